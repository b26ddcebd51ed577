"""Clinics (tenants), the people in them, machine credentials and invitations."""

import hashlib
import re
import secrets
from datetime import timedelta
from uuid import uuid4

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from cloudpacs.compiled_query import (
    CompiledQuery,
    Slot,
    fields_in_order,
    models_from_row,
    related_fields,
)
from tenants import roles
from tenants.audit_keys import canonical, chain_key, key_check_mac, legacy_mac, mac
from tenants.scoping import TenantOwned

AE_TITLE_RE = re.compile(r"^[A-Z0-9 _\-.]{1,16}$")


def default_ae_title(slug: str) -> str:
    """The clinic's AE title by default: its slug upper-cased, cut to 16 characters."""
    return slug.upper()[:16]


def unique_ae_title(slug: str) -> str:
    """The default AE title, or, when a clinic whose slug starts alike holds it already, the
    same cut shorter with a number (AE titles are unique: they pick the clinic)."""
    title = default_ae_title(slug)
    n = 1
    while Tenant.objects.filter(ae_title=title).exists():
        n += 1
        suffix = f"-{n}"
        title = default_ae_title(slug)[: 16 - len(suffix)] + suffix
    return title


def validate_ae_title(value: str) -> None:
    if not AE_TITLE_RE.match(value) or value.strip() != value:
        raise ValidationError("An AE title is 1-16 characters: A-Z, 0-9, space, _ - .")


class Tenant(models.Model):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    STATUS_CHOICES = [(ACTIVE, "Active"), (SUSPENDED, "Suspended")]

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=63, unique=True)
    # The clinic's durable identity, never re-used: its data keys are bound to it (not to the
    # numeric id, which a clinic re-created in a new database does not keep), so a restore
    # hands each object to its own clinic. Re-create a clinic with its uuid (create_tenant --uuid).
    uuid = models.UUIDField(default=uuid4, unique=True, editable=False)
    ae_title = models.CharField(max_length=16, unique=True, validators=[validate_ae_title])
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if not self.ae_title:
            self.ae_title = unique_ae_title(self.slug)
        super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:
        return self.status == self.ACTIVE


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra):
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, username):
        return self.get(**{f"{self.model.USERNAME_FIELD}__iexact": username})


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Logs in by email; belongs to clinics through Membership."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Platform operator: may use the admin")
    date_joined = models.DateTimeField(default=timezone.now)
    failed_logins = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email

    def is_locked(self) -> bool:
        return self.locked_until is not None and self.locked_until > timezone.now()


class Membership(TenantOwned):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=roles.ROLE_CHOICES)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="uniq_membership")]
        ordering = ["user__email"]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} as {self.role}"

    def can(self, perm: str) -> bool:
        return roles.has_perm(self.role, perm)


def _hash_secret(raw: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough (no salt or stretching needed).
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(TenantOwned):
    """A clinic's machine credential: named, scoped, stored hashed, revocable."""

    PREFIX = "cpk_"

    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    token_hint = models.CharField(max_length=12, help_text="First characters, to tell tokens apart")
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwned.Meta):
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.token_hint}…)"

    @classmethod
    def issue(cls, *, tenant: Tenant, name: str, scopes: list[str], created_by=None) -> tuple["ApiToken", str]:
        """Create a token; returns it with the raw secret, which is never stored or shown again."""
        unknown = set(scopes) - set(roles.TOKEN_SCOPES)
        if unknown or not scopes:
            raise ValidationError(f"Scopes must be among {sorted(roles.TOKEN_SCOPES)}")
        raw = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.for_tenant(tenant).create(
            name=name,
            token_hash=_hash_secret(raw),
            token_hint=raw[: len(cls.PREFIX) + 6],
            scopes=sorted(set(scopes)),
            created_by=created_by,
        )
        return token, raw

    @classmethod
    def find(cls, raw: str) -> "ApiToken | None":
        """The token with this secret, whatever its tenant (the caller checks the tenant)."""
        if not raw.startswith(cls.PREFIX):
            return None
        rows = _TOKEN_BY_HASH.rows(token_hash=_hash_secret(raw))
        if not rows:
            return None
        token, token.tenant = models_from_row(rows[0], (cls, fields_in_order(cls)), (Tenant, fields_in_order(Tenant)))
        return token

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def grants(self, perm: str) -> bool:
        return self.is_active and roles.scopes_grant(self.scopes, perm)

    def touch(self) -> None:
        now = timezone.now()
        # Record use at most once a minute, to keep writes off the hot path.
        if self.last_used_at is None or now - self.last_used_at > timedelta(minutes=1):
            type(self).unscoped.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


# Every API request looks its token up (with its clinic): compiled once (cloudpacs.compiled_query).
_TOKEN_BY_HASH = CompiledQuery(lambda: ApiToken.unscoped.filter(token_hash=Slot("token_hash", models.CharField()))
                               .values_list(*fields_in_order(ApiToken), *related_fields("tenant", Tenant))[:1])


class Invitation(TenantOwned):
    """An emailed invitation to join a clinic with a role; single use, expires."""

    email = models.EmailField()
    role = models.CharField(max_length=20, choices=roles.ROLE_CHOICES)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # When the email went out; None when sending failed (or no mail server is configured):
    # the members page then says so, and the admin passes the link on another way.
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwned.Meta):
        ordering = ["-created_at"]

    @classmethod
    def issue(cls, *, tenant: Tenant, email: str, role: str, invited_by=None) -> tuple["Invitation", str]:
        raw = secrets.token_urlsafe(32)
        invitation = cls.objects.for_tenant(tenant).create(
            email=email.lower(),
            role=role,
            token_hash=_hash_secret(raw),
            invited_by=invited_by,
            expires_at=timezone.now() + timedelta(days=settings.INVITATION_VALID_DAYS),
        )
        return invitation, raw

    @classmethod
    def find(cls, raw: str) -> "Invitation | None":
        return cls.unscoped.select_related("tenant").filter(token_hash=_hash_secret(raw)).first()

    @property
    def is_usable(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()


# ---- the audit log (its chain logic is in tenants/audit.py, anchors in audit_anchor.py) ----

GENESIS_HASH = "0" * 64
SHA256 = 1  # legacy: anyone could recompute it
HMAC_SHA256 = 2
HASH_VERSIONS = [(SHA256, "SHA-256 (before keyed hashes)"), (HMAC_SHA256, "HMAC-SHA256")]


class AppendOnlyError(RuntimeError):
    pass


class AuditEvent(TenantOwned):
    USER = "user"
    TOKEN = "token"
    SHARE = "share"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"
    ACTOR_CHOICES = [(USER, "User"), (TOKEN, "API token"), (SHARE, "Share link"),
                     (SYSTEM, "System"), (ANONYMOUS, "Anonymous")]

    seq = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_type = models.CharField(max_length=16, choices=ACTOR_CHOICES)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=128, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    hash_version = models.PositiveSmallIntegerField(choices=HASH_VERSIONS, default=HMAC_SHA256)

    class Meta(TenantOwned.Meta):
        ordering = ["-seq"]
        constraints = [models.UniqueConstraint(fields=["tenant", "seq"], name="uniq_audit_seq")]
        indexes = [models.Index(fields=["tenant", "-seq"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_label or self.actor_type}"

    def compute_hash(self, key: bytes | None = None) -> str:
        """The hash of this event's fields under its `hash_version` (`key`: the chain key,
        looked up when not given)."""
        fields = {
            "tenant": self.tenant_id,
            "seq": self.seq,
            "created_at": self.created_at.isoformat(),
            "actor_type": self.actor_type,
            "actor_id": self.actor_id,
            "actor_label": self.actor_label,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
        }
        if self.hash_version == SHA256:
            return hashlib.sha256(canonical(fields)).hexdigest()
        return mac(key if key is not None else chain_key(), canonical(fields))

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("audit events are never changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit events are never deleted")


class AuditKeyCheck(TenantOwned):
    """One per clinic with events, written with its first keyed event (or by the migration
    that introduced keys). `key_check` tells a wrong master key from altered rows;
    `legacy_mac` fixes how many first events may carry a plain SHA-256 hash."""

    legacy_events = models.PositiveBigIntegerField(default=0)
    key_check = models.CharField(max_length=64)
    legacy_mac = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant"], name="uniq_audit_key_check")]

    @classmethod
    def build(cls, *, tenant_id: int, legacy_events: int, key: bytes) -> "AuditKeyCheck":
        return cls(tenant_id=tenant_id, legacy_events=legacy_events,
                   key_check=key_check_mac(key, tenant_id),
                   legacy_mac=legacy_mac(key, tenant_id, legacy_events))


class AuditAnchorState(TenantOwned):
    """The head last anchored in both regions, per clinic (bookkeeping, never trusted)."""

    seq = models.PositiveBigIntegerField()
    hash = models.CharField(max_length=64)
    anchored_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant"], name="uniq_audit_anchor_state")]
