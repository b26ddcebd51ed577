"""Durable-storage state: per-clinic data keys, per-region copies, fixity audits.

Imported at the end of archive/models.py so Django registers them in the archive app."""

from django.db import models
from django.utils import timezone

from tenants.scoping import TenantOwned


class DataKey(TenantOwned):
    """A clinic's data key, stored only wrapped by the master key (which is never in the DB).

    Rotation adds a new version and makes it active; older versions stay for reading the
    objects whose header names them. The primary key is the key id written in headers."""

    version = models.PositiveIntegerField()
    wrapped = models.BinaryField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        db_table = "archive_datakey"  # made under the archive app; kept
        constraints = [models.UniqueConstraint(fields=["tenant", "version"], name="uniq_datakey_version")]

    def __str__(self) -> str:
        return f"DataKey {self.pk} v{self.version}"


class StoragePolicy(TenantOwned):
    """A clinic's storage choices (its storage settings page; both off by default)."""

    # Store uncompressed pixel data re-encoded losslessly in this syntax (empty: off).
    compression_syntax = models.CharField(max_length=64, blank=True)
    # Move copies this many days old to the regions' colder storage class (None: never).
    cold_after_days = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant"], name="uniq_storage_policy")]

    def __str__(self) -> str:
        return f"Storage policy of clinic {self.tenant_id}"


class InstanceCopy(TenantOwned):
    """The state of one instance's encrypted copy in one region."""

    PENDING, UPLOADED, VERIFIED, FAILED = "pending", "uploaded", "verified", "failed"
    STATE_CHOICES = [(s, s) for s in (PENDING, UPLOADED, VERIFIED, FAILED)]

    instance = models.ForeignKey("archive.Instance", on_delete=models.CASCADE, related_name="copies")
    region = models.CharField(max_length=16)
    state = models.CharField(max_length=16, choices=STATE_CHOICES, default=PENDING)
    cipher_sha256 = models.CharField(max_length=64, blank=True)
    cipher_size = models.PositiveBigIntegerField(null=True, blank=True)
    key_id = models.BigIntegerField(null=True, blank=True)
    uploaded_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    # Last fixity audit of this copy (the audit re-reads the least recently checked first).
    checked_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    # The region's storage class of the object (archive/storage/classes.py).
    storage_class = models.CharField(max_length=32, default="STANDARD")

    class Meta(TenantOwned.Meta):
        db_table = "archive_instancecopy"  # made under the archive app; kept
        constraints = [models.UniqueConstraint(fields=["instance", "region"], name="uniq_copy_region")]
        indexes = [models.Index(fields=["tenant", "region", "state"])]
        verbose_name_plural = "instance copies"

    def __str__(self) -> str:
        return f"Copy of instance {self.instance_id} in {self.region}: {self.state}"


class FixityRun(models.Model):
    """One pass of the integrity audit over both regions (operator-level, all clinics)."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    checked = models.PositiveIntegerField(default=0)
    ok = models.PositiveIntegerField(default=0)
    repaired = models.PositiveIntegerField(default=0)
    unrepaired = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "archive_fixityrun"  # made under the archive app; kept
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Fixity run {self.pk} ({self.started_at:%Y-%m-%d %H:%M})"


class FixityFinding(TenantOwned):
    """A missing or corrupt copy found by an audit, and what was done about it."""

    MISSING, CORRUPT = "missing", "corrupt"
    REPAIRED, UNREPAIRED = "repaired", "unrepaired"

    run = models.ForeignKey(FixityRun, on_delete=models.CASCADE, related_name="findings")
    instance = models.ForeignKey("archive.Instance", null=True, on_delete=models.SET_NULL, related_name="+")
    storage_key = models.CharField(max_length=128)
    region = models.CharField(max_length=16)
    problem = models.CharField(max_length=16)
    action = models.CharField(max_length=16)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        db_table = "archive_fixityfinding"  # made under the archive app; kept
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.problem} copy in {self.region}: {self.action}"
