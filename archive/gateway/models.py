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
