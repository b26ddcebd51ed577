"""The DICOM peers of a clinic: who may send to its AE title, and where it may send."""

import ipaddress

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from tenants.scoping import TenantOwned


def validate_network(value: str) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValidationError("An address or range: 10.0.0.7, 10.0.0.0/24 or 2001:db8::/48.") from None


def normalize_network(value: str | None) -> str:
    """`10.0.0.7` -> `10.0.0.7/32`, `10.0.0.9/24` -> `10.0.0.0/24`; empty stays empty."""
    value = (value or "").strip()
    return str(ipaddress.ip_network(value, strict=False)) if value else ""


class DicomPeer(TenantOwned):
    """A modality, workstation or PACS the clinic talks DICOM with, by its AE title.

    - A sender (`may_send`) may open associations to the clinic's AE title, from
      `network` only when that is set (an address or a CIDR range).
    - A destination (`host` and `port`) is where C-MOVE sends studies.
    One AE title is often both: a workstation sends its studies and retrieves priors."""

    ae_title = models.CharField(max_length=16)
    may_send = models.BooleanField(default=True)
    network = models.CharField(max_length=49, blank=True, validators=[validate_network],
                               help_text="senders only from this address or range (CIDR); empty: any")
    host = models.CharField(max_length=255, blank=True, help_text="a destination's host name or address")
    port = models.PositiveIntegerField(null=True, blank=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        db_table = "archive_dicompeer"  # made under the archive app; kept
        constraints = [models.UniqueConstraint(fields=["tenant", "ae_title"], name="uniq_peer_ae")]
        ordering = ["ae_title"]

    def __str__(self) -> str:
        return self.ae_title

    def admits(self, address: str | None) -> bool:
        """May this peer open an association from `address`?"""
        if not self.may_send:
            return False
        if not self.network:
            return True
        try:
            return ipaddress.ip_address(address or "") in ipaddress.ip_network(self.network, strict=False)
        except ValueError:
            return False

    @property
    def is_destination(self) -> bool:
        return bool(self.host and self.port)


def destination_get(tenant, ae_title: str) -> DicomPeer | None:
    """The clinic's peer of this AE title that has an address to send to (C-MOVE, storage
    commitment reports), or None."""
    return (DicomPeer.objects.for_tenant(tenant).filter(ae_title=(ae_title or "").strip())
            .exclude(host="").exclude(port=None).first())


class StorageCommitment(TenantOwned):
    """A modality's Storage Commitment request (PS3.4 J.3): the instances it asks us to
    take responsibility for. It is answered by one N-EVENT-REPORT, once every instance is
    either verified in both regions (committed) or known not to be (failed)."""

    PENDING, SENDING, REPORTED = "pending", "sending", "reported"
    STATES = [(s, s) for s in (PENDING, SENDING, REPORTED)]

    transaction_uid = models.CharField(max_length=64)
    requester_ae = models.CharField(max_length=16)
    items = models.JSONField(help_text="[[SOP Class UID, SOP Instance UID], ...] as the modality asked")
    state = models.CharField(max_length=16, choices=STATES, default=PENDING)
    requested_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    reported_on = models.CharField(max_length=16, blank=True, help_text="same association, or a new one")
    watched = models.BooleanField(default=False, help_text="the gateway waits to answer on the request's association")
    committed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "requester_ae", "transaction_uid"],
                                               name="uniq_commitment_transaction")]
        indexes = [models.Index(fields=["state", "requested_at"])]

    def __str__(self) -> str:
        return f"commitment {self.transaction_uid} from {self.requester_ae}"
