"""A clinic's export requested from its settings page: built by a worker as one zip,
kept encrypted in the primary region until it expires, downloaded by the clinic's admins."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.scoping import TenantOwned


class ClinicExport(TenantOwned):
    QUEUED, RUNNING, READY, FAILED, EXPIRED = "queued", "running", "ready", "failed", "expired"
    STATES = [(s, s) for s in (QUEUED, RUNNING, READY, FAILED, EXPIRED)]

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=16, choices=STATES, default=QUEUED)
    studies_total = models.PositiveIntegerField(default=0)
    studies_done = models.PositiveIntegerField(default=0)
    bytes_done = models.PositiveBigIntegerField(default=0)
    bytes_total = models.PositiveBigIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)  # of the zip, once ready
    storage_key = models.CharField(max_length=128, blank=True)  # in the primary region, encrypted
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)  # its builder's last sign of life

    class Meta(TenantOwned.Meta):
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"Export {self.pk} of clinic {self.tenant_id}: {self.state}"

    @property
    def percent(self) -> int:
        return int(100 * self.bytes_done / self.bytes_total) if self.bytes_total else 0
