"""Retention state: the clinic's policy, each study's retention date, deletion requests
and the tombstones deleted studies leave behind.

Imported at the end of archive/models.py so Django registers them in the archive app. A
study's retention date lives in its own table (`StudyRetention`) rather than on Study, so
the policy can be recomputed for every study without touching the index rows that ingest,
QIDO and the worklist use."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from archive.retention.policy import RULE_CHOICES, Periods
from tenants.scoping import TenantOwned

YEARS = [MinValueValidator(1), MaxValueValidator(100)]


class RetentionPolicy(TenantOwned):
    """One row per clinic, created with the defaults on first use."""

    adult_years = models.PositiveSmallIntegerField(default=7, validators=YEARS)
    minor_years = models.PositiveSmallIntegerField(default=7, validators=YEARS,
                                                   help_text="years after the 18th birthday")
    mammography_years = models.PositiveSmallIntegerField(default=10, validators=YEARS)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        db_table = "archive_retentionpolicy"  # made under the archive app; kept
        constraints = [models.UniqueConstraint(fields=["tenant"], name="uniq_retention_policy")]
        verbose_name_plural = "retention policies"

    def __str__(self) -> str:
        return f"Retention policy of clinic {self.tenant_id}"

    @property
    def periods(self) -> Periods:
        return Periods(self.adult_years, self.minor_years, self.mammography_years)


class StudyRetention(TenantOwned):
    study = models.OneToOneField("archive.Study", on_delete=models.CASCADE, related_name="retention")
    retain_until = models.DateField()
    rule = models.CharField(max_length=16, choices=RULE_CHOICES)
    # Whether MG was seen when this was computed: ingest recomputes when a study's first
    # MG series arrives, and only then.
    mammography = models.BooleanField(default=False)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        db_table = "archive_studyretention"  # made under the archive app; kept
        indexes = [models.Index(fields=["tenant", "retain_until"])]

    def __str__(self) -> str:
        return f"Study {self.study_id} kept until {self.retain_until} ({self.rule})"


class DeletionRequest(TenantOwned):
    """An admin's request to delete one study; a different admin approves or anyone of the
    two cancels. Kept after the study is gone (the study link becomes null).

    A clinic with no second admin who could approve gets the cooling-off path instead:
    `runs_after` is set, every member who may delete is emailed and may cancel, and the
    deletion runs by itself once that time has passed (archive.deletions_due)."""

    PENDING, APPROVED, CANCELLED = "pending", "approved", "cancelled"
    STATE_CHOICES = [(PENDING, "Pending"), (APPROVED, "Approved"), (CANCELLED, "Cancelled")]

    study = models.ForeignKey("archive.Study", null=True, on_delete=models.SET_NULL,
                              related_name="deletion_requests")
    study_instance_uid = models.CharField(max_length=64)
    reason = models.TextField(max_length=1000)
    # The study was still within retention when requested and the requester said so.
    override_retention = models.BooleanField(default=False)
    retain_until = models.DateField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=STATE_CHOICES, default=PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                     related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    runs_after = models.DateTimeField(null=True, blank=True)  # cooling-off path only

    class Meta(TenantOwned.Meta):
        db_table = "archive_deletionrequest"  # made under the archive app; kept
        constraints = [models.UniqueConstraint(fields=["study"], condition=Q(state="pending"),
                                               name="uniq_pending_deletion")]
        indexes = [models.Index(fields=["tenant", "state", "-requested_at"])]

    def __str__(self) -> str:
        return f"Deletion request {self.pk} ({self.state})"

    @property
    def cooling_off(self) -> bool:
        return self.runs_after is not None


class StudyTombstone(TenantOwned):
    """What is left of a deleted study: its UID, size, who asked, who approved, why. No
    other patient data. `storage_keys` (opaque, no PHI) lets the object purge be finished
    later if a region was unreachable, and tells a restore which objects must stay gone."""

    request = models.OneToOneField(DeletionRequest, on_delete=models.PROTECT, related_name="tombstone")
    study_instance_uid = models.CharField(max_length=64)
    num_instances = models.PositiveIntegerField()
    size_bytes = models.PositiveBigIntegerField()
    reason = models.TextField()
    override_retention = models.BooleanField(default=False)
    retain_until = models.DateField(null=True, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                     related_name="+")
    requested_by_email = models.CharField(max_length=254, blank=True)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                    related_name="+")
    approved_by_email = models.CharField(max_length=254, blank=True)
    requested_at = models.DateTimeField()
    deleted_at = models.DateTimeField(default=timezone.now)
    storage_keys = models.JSONField(default=list)
    objects_purged_at = models.DateTimeField(null=True, blank=True)
    purge_error = models.TextField(blank=True)

    class Meta(TenantOwned.Meta):
        db_table = "archive_studytombstone"  # made under the archive app; kept
        indexes = [models.Index(fields=["tenant", "study_instance_uid"])]

    def __str__(self) -> str:
        return f"Tombstone {self.pk}"
