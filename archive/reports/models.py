"""A study's report and its versions.

A version is a draft until it is signed; a signed version is never changed (save() refuses)
and never deleted while its study lives. An amendment is a new version that names the one
it replaces; the report's state is that of its newest version. Each signed version becomes
a DICOM object in the study (Basic Text SR, or Encapsulated PDF), named by `sop_instance_uid`.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.scoping import TenantOwned

UNREAD, DRAFT, FINAL = "unread", "draft", "final"
# A study's read status, as the worklist shows and filters it: no report row, or one with
# nothing written yet (only an assignment), is unread; final once any version is signed.
READ_STATUSES = [(UNREAD, "Unread"), (DRAFT, "Draft"), (FINAL, "Final")]
STATE_CHOICES = [(DRAFT, "Draft"), (FINAL, "Final")]
TEXT, PDF = "text", "pdf"


class FinalReportChanged(Exception):
    """A signed version was about to be changed in place."""


class Report(TenantOwned):
    study = models.OneToOneField("archive.Study", on_delete=models.CASCADE, related_name="report")
    state = models.CharField(max_length=8, choices=READ_STATUSES, default=UNREAD)
    # The series its DICOM objects go in: one for the written reports (SR), one for signed
    # PDFs (DOC), as a series has one modality.
    series_instance_uid = models.CharField(max_length=64)
    pdf_series_instance_uid = models.CharField(max_length=64)
    assigned_to = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        indexes = [models.Index(fields=["tenant", "state"]), models.Index(fields=["tenant", "assigned_to"])]

    def __str__(self) -> str:
        return f"Report of study {self.study_id} ({self.state})"


class ReportVersion(TenantOwned):
    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=[(TEXT, "Text"), (PDF, "PDF")], default=TEXT)
    state = models.CharField(max_length=8, choices=STATE_CHOICES, default=DRAFT)
    findings = models.TextField(blank=True)
    impression = models.TextField(blank=True)
    pdf_size_bytes = models.PositiveIntegerField(null=True, blank=True)
    amends = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    signed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    signed_by_name = models.CharField(max_length=200, blank=True)  # kept if the account goes
    signed_at = models.DateTimeField(null=True, blank=True)
    sop_instance_uid = models.CharField(max_length=64, blank=True)

    class Meta(TenantOwned.Meta):
        ordering = ["report", "number"]
        constraints = [models.UniqueConstraint(fields=["report", "number"], name="uniq_report_version")]

    def __str__(self) -> str:
        return f"Report version {self.number} ({self.state})"

    def save(self, *args, **kwargs):
        if self.pk is not None and type(self).unscoped.filter(pk=self.pk, state=FINAL).exists():
            raise FinalReportChanged("a signed report version is never changed; amend it instead")
        super().save(*args, **kwargs)

    @property
    def is_amendment(self) -> bool:
        return self.amends_id is not None
