"""The DICOM peers a clinic allows to send to its AE title."""

from django.db import models
from django.utils import timezone

from tenants.scoping import TenantOwned


class DicomPeer(TenantOwned):
    """A modality or PACS allowed to open associations to the clinic's AE title.

    `host` optionally pins the peer to one IP address; `port` is where C-MOVE sends to."""

    ae_title = models.CharField(max_length=16)
    host = models.GenericIPAddressField(null=True, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        db_table = "archive_dicompeer"  # made under the archive app; kept
        constraints = [models.UniqueConstraint(fields=["tenant", "ae_title"], name="uniq_peer_ae")]
        ordering = ["ae_title"]

    def __str__(self) -> str:
        return self.ae_title
