"""The study index: Patient -> Study -> Series -> Instance, per clinic.

Patient-level attributes are copied onto Study so that worklist and QIDO study searches
read one table. Object keys are opaque (no PHI): `<tenant id>/<random hex>`.
"""

import uuid

from django.db import models
from django.utils import timezone

from tenants.scoping import TenantOwned


class HeaderJSONField(models.JSONField):
    """A JSONField that PostgreSQL bulk inserts bind value by value. Django's default for
    a multi-row insert packs each column into one array parameter (INSERT ... UNNEST), and
    psycopg escapes a jsonb[] array literal in Python, quote by quote: for headers of a few
    kB that was a third of the ingest time of a STOW body. A per-value placeholder keeps
    the plain VALUES form, whose values libpq escapes in C. Nothing else changes."""

    def get_placeholder(self, value, compiler, connection) -> str:
        return "%s"


# Identifiers are stored whole, also beyond their VR's length, never cut (see
# archive.ingest.parse.IDENTIFIER_MAX_CHARS, which refuses anything longer than this).
IDENTIFIER_MAX_LENGTH = 256


class Patient(TenantOwned):
    patient_id = models.CharField(max_length=IDENTIFIER_MAX_LENGTH, blank=True)
    issuer_of_patient_id = models.CharField(max_length=IDENTIFIER_MAX_LENGTH, blank=True)
    patient_name = models.CharField(max_length=324, blank=True)
    birth_date = models.CharField(max_length=8, blank=True)
    sex = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "patient_id", "issuer_of_patient_id"],
                                               name="uniq_patient")]

    def __str__(self) -> str:
        return f"Patient {self.pk}"


class Study(TenantOwned):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    study_instance_uid = models.CharField(max_length=64)
    study_date = models.CharField(max_length=8, blank=True, db_index=True)
    study_time = models.CharField(max_length=16, blank=True)
    accession_number = models.CharField(max_length=IDENTIFIER_MAX_LENGTH, blank=True)
    study_id = models.CharField(max_length=IDENTIFIER_MAX_LENGTH, blank=True)
    study_description = models.CharField(max_length=128, blank=True)
    referring_physician_name = models.CharField(max_length=324, blank=True)
    # Copies of the patient's attributes, for one-table searches.
    patient_name = models.CharField(max_length=324, blank=True)
    patient_name_search = models.CharField(max_length=324, blank=True, help_text="upper-cased for matching")
    # PatientID (0010,0020); `patient_id` is the foreign key's column.
    patient_identifier = models.CharField(max_length=IDENTIFIER_MAX_LENGTH, blank=True)
    patient_birth_date = models.CharField(max_length=8, blank=True)
    patient_sex = models.CharField(max_length=16, blank=True)
    specific_character_set = models.CharField(max_length=128, blank=True)
    modalities = models.CharField(max_length=128, blank=True, help_text="backslash-separated")
    num_series = models.PositiveIntegerField(default=0)
    num_instances = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "study_instance_uid"], name="uniq_study_uid")]
        indexes = [
            models.Index(fields=["tenant", "study_date"]),
            models.Index(fields=["tenant", "patient_name_search"]),
            models.Index(fields=["tenant", "patient_identifier"]),
            models.Index(fields=["tenant", "accession_number"]),
            models.Index(fields=["tenant", "-created_at"]),
        ]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return f"Study {self.pk}"

    @property
    def modality_list(self) -> list[str]:
        return [m for m in self.modalities.split("\\") if m]


class Series(TenantOwned):
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="series")
    series_instance_uid = models.CharField(max_length=64)
    modality = models.CharField(max_length=16, blank=True, db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=128, blank=True)
    body_part_examined = models.CharField(max_length=16, blank=True)
    series_date = models.CharField(max_length=8, blank=True)
    series_time = models.CharField(max_length=16, blank=True)
    performed_procedure_step_start_date = models.CharField(max_length=8, blank=True)
    performed_procedure_step_start_time = models.CharField(max_length=16, blank=True)
    num_instances = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "series_instance_uid"], name="uniq_series_uid")]
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return f"Series {self.pk}"


class Instance(TenantOwned):
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="instances")
    series = models.ForeignKey(Series, on_delete=models.PROTECT, related_name="instances")
    sop_instance_uid = models.CharField(max_length=64)
    sop_class_uid = models.CharField(max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_key = models.CharField(max_length=128, unique=True)
    # The header as DICOM JSON (PS3.18 F.2) without bulk data, for QIDO includefield and
    # WADO metadata without reading the object.
    metadata = HeaderJSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    # As received, when the stored encoding is a lossless re-encoding of it (the clinic's
    # compression, archive/storage/compression.py); empty otherwise. A re-send of the
    # received bytes is then still recognised as the same instance.
    original_sha256 = models.CharField(max_length=64, blank=True)
    original_size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    original_transfer_syntax_uid = models.CharField(max_length=64, blank=True)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "sop_instance_uid"], name="uniq_sop_uid")]
        indexes = [models.Index(fields=["series", "instance_number"])]

    def __str__(self) -> str:
        return f"Instance {self.pk}"

    @staticmethod
    def new_storage_key(tenant_id: int) -> str:
        return f"{tenant_id}/{uuid.uuid4().hex}"
