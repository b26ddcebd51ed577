"""A share is a row: which studies, for whom, until when, with which access check. The
link's token is shown once, when the share is made; only its SHA-256 is kept, so the
database cannot give a link back, and revoking or shortening a share is a change of
this row that the next request sees."""

import hashlib
import secrets
import uuid

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import models
from django.utils import timezone

from archive.models import Patient, Study
from tenants.scoping import TenantOwned

TOKEN_BYTES = 24  # 192 bits of randomness; at least 128 are asked for


def new_pseudonym_key() -> str:
    return secrets.token_hex(32)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class Share(TenantOwned):
    NONE = "none"
    CODE = "code"
    BIRTH_DATE = "birth_date"
    ACCESS_CHOICES = [(CODE, "An access code, sent separately"),
                      (BIRTH_DATE, "The patient's date of birth"),
                      (NONE, "None: the link alone opens it")]

    # In the share's own URLs after the link is opened (not a secret: the session is).
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, unique=True)
    studies = models.ManyToManyField(Study, related_name="shares")
    # Set for a share of all of one patient's studies (frozen when it is made).
    patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    access = models.CharField(max_length=16, choices=ACCESS_CHOICES, default=CODE)
    access_code_hash = models.CharField(max_length=256, blank=True)
    allow_download = models.BooleanField(default=False)
    # A de-identified share (archive/sharing/deidentify.py): pseudonyms derived from this key.
    deidentify = models.BooleanField(default=False)
    pseudonym_key = models.CharField(max_length=64, default=new_pseudonym_key, editable=False)
    burned_in_risk = models.BooleanField(default=False, help_text="images may carry burned-in text")
    recipient_name = models.CharField(max_length=200, blank=True)
    recipient_email = models.EmailField(blank=True)
    message = models.TextField(blank=True, max_length=2000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_by_label = models.CharField(max_length=200, blank=True)  # a user's email or a token's name
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Wrong access checks in a row, and until when the link refuses further tries.
    failed_attempts = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    lockouts = models.PositiveIntegerField(default=0)  # each lockout lasts twice the one before
    # The form that made it (a hidden value): sending the same form again makes no second share.
    form_nonce = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    opened_count = models.PositiveIntegerField(default=0)
    last_opened_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwned.Meta):
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"Share {self.pk}"

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(TOKEN_BYTES)

    def set_access_code(self, code: str) -> None:
        self.access_code_hash = make_password(code) if code else ""

    def access_code_matches(self, code: str) -> bool:
        return bool(self.access_code_hash) and check_password(code, self.access_code_hash)

    def shared_studies(self):
        """The share's studies (a reverse relation of a tenant-owned model must be scoped)."""
        return self.studies.for_tenant(self.tenant)

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return not self.is_revoked and not self.is_expired

    @property
    def status(self) -> str:
        return "revoked" if self.is_revoked else "expired" if self.is_expired else "active"

    @property
    def audit_label(self) -> str:
        return f"share {self.pk} to {self.recipient_email or self.recipient_name or 'a recipient'}"
