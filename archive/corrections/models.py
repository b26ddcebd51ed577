"""A correction and the header versions it made.

Each corrected instance gets a new stored object (the same pixel data bytes, a corrected
header) and points at it; the object it pointed at before is kept in both regions, named
here with its checksums, so a revert points the instance back at it. Nothing is rewritten in
place, and an image's previous header is never lost while its study lives."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.scoping import TenantOwned

DEMOGRAPHICS, MOVE_SERIES, MERGE = "demographics", "move_series", "merge"
RUNNING, APPLIED, FAILED, REVERTING = "running", "applied", "failed", "reverting"
KINDS = [(DEMOGRAPHICS, "Patient details"), (MOVE_SERIES, "Series moved"), (MERGE, "Studies merged")]


class Correction(TenantOwned):
    kind = models.CharField(max_length=16, choices=KINDS)
    study = models.ForeignKey("archive.Study", null=True, on_delete=models.SET_NULL, related_name="corrections")
    study_instance_uid = models.CharField(max_length=64)  # the study it applies to (the target)
    source_study_uid = models.CharField(max_length=64, blank=True)  # moved or merged from
    series_instance_uid = models.CharField(max_length=64, blank=True)  # the series moved
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    reverted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    reverted_at = models.DateTimeField(null=True, blank=True)
    # A worker applies it (outbox kind "correct"): a study of hundreds of images takes a
    # while, and the study page shows how far it is. A revert is a worker's too (it reads
    # every earlier header back, from a region when tier 1 no longer holds it): REVERTING
    # until it is done, then APPLIED again with `reverted_at` set, or with `error` set if
    # it could not be done.
    state = models.CharField(max_length=12, default=RUNNING,
                             choices=[(RUNNING, "Running"), (APPLIED, "Applied"), (FAILED, "Failed"),
                                      (REVERTING, "Reverting")])
    params = models.JSONField(default=dict)  # what the worker needs: attribute values, ids
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)

    class Meta(TenantOwned.Meta):
        indexes = [models.Index(fields=["tenant", "study_instance_uid"]),
                   models.Index(fields=["tenant", "source_study_uid"])]

    def __str__(self) -> str:
        return f"Correction {self.pk} ({self.kind})"


class HeaderVersion(TenantOwned):
    correction = models.ForeignKey(Correction, on_delete=models.CASCADE, related_name="versions")
    # Kept when the index loses the instance (a restore must still know which objects are
    # superseded headers: archive/storage/restore.py).
    instance = models.ForeignKey("archive.Instance", null=True, on_delete=models.SET_NULL,
                                 related_name="header_versions")
    old_storage_key = models.CharField(max_length=128)
    old_sha256 = models.CharField(max_length=64)
    old_size_bytes = models.PositiveBigIntegerField()
    # The old object's copies (region -> cipher SHA-256, size, data key, storage class).
    old_copies = models.JSONField(default=dict)
    new_storage_key = models.CharField(max_length=128)
    new_sha256 = models.CharField(max_length=64)
    new_size_bytes = models.PositiveBigIntegerField()

    class Meta(TenantOwned.Meta):
        indexes = [models.Index(fields=["old_storage_key"]), models.Index(fields=["new_storage_key"])]

    def __str__(self) -> str:
        return f"Header version of instance {self.instance_id}"
