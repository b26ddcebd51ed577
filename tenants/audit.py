"""The append-only audit log, one hash chain per clinic.

Each event stores the hash of the one before it in the same clinic and a keyed hash
(HMAC-SHA256, key derived from the master key, see tenants/audit_keys.py) over its own
fields, so changing, deleting or reordering a row breaks the chain, and
`manage.py verify_audit` finds where, even if whoever changed it recomputed the hashes.
Deleting the newest events is caught by anchors outside the database
(tenants/audit_anchor.py).

Events written before hashes were keyed keep their plain SHA-256 (`hash_version` 1); how
many there are per clinic is fixed, under the key, in its `AuditKeyCheck` row.
"""

import hashlib
from dataclasses import dataclass

from django.db import models, transaction
from django.utils import timezone

from tenants.audit_keys import (
    AuditKeyError,
    canonical,
    chain_key,
    key_check_mac,
    legacy_mac,
    mac,
    same,
)
from tenants.scoping import TenantOwned

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


@dataclass(frozen=True)
class Actor:
    """Who did something: a user, an API token, a share link, or the system."""

    type: str
    id: str = ""
    label: str = ""
    ip: str | None = None
    user_agent: str = ""

    @classmethod
    def system(cls, label: str = "system") -> "Actor":
        return cls(type=AuditEvent.SYSTEM, label=label)


def audit_record(*, tenant, actor: Actor, action: str, obj_type: str = "", obj_id: str = "",
                 detail: dict | None = None) -> AuditEvent:
    """Append one event to the clinic's chain. Runs inside the caller's transaction if any."""
    from tenants.models import Tenant

    with transaction.atomic():
        # Lock the clinic row so two writers cannot take the same place in the chain.
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        last = (AuditEvent.objects.for_tenant(tenant).order_by("-seq")
                .values_list("seq", "hash").first())
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        key = chain_key()
        if seq == 1:
            AuditKeyCheck.build(tenant_id=tenant.pk, legacy_events=0, key=key).save()
        event = AuditEvent(
            tenant=tenant, seq=seq, actor_type=actor.type, actor_id=str(actor.id or "")[:64],
            actor_label=(actor.label or "")[:254], action=action, object_type=obj_type,
            object_id=str(obj_id)[:128], ip=actor.ip or None,
            user_agent=(actor.user_agent or "")[:300], detail=detail or {}, prev_hash=prev_hash,
        )
        event.hash = event.compute_hash(key)
        event.save()
    return event


@dataclass
class ChainProblem:
    seq: int | None  # None: the whole chain, not one event
    problem: str


def audit_verify(*, tenant) -> list[ChainProblem]:
    """Walk a clinic's chain from the start; return every place it is broken.

    Raises AuditKeyError when the configured master key is not the one the chain was
    written with (or there is none): then nothing can be said about the rows."""
    problems: list[ChainProblem] = []
    key = chain_key()
    events = AuditEvent.objects.for_tenant(tenant)
    check = AuditKeyCheck.objects.for_tenant(tenant).first()
    legacy = 0
    if check is None:
        if events.exists():
            problems.append(ChainProblem(None, "the clinic's key check record is missing"))
    elif not same(check.key_check, key_check_mac(key, tenant.pk)):
        raise AuditKeyError("cannot verify: wrong or missing master key")
    elif not same(check.legacy_mac, legacy_mac(key, tenant.pk, check.legacy_events)):
        problems.append(ChainProblem(None, "the clinic's key check record was altered"))
    else:
        legacy = check.legacy_events
    expected_prev, expected_seq = GENESIS_HASH, 1
    for event in events.order_by("seq").iterator(chunk_size=2000):
        if event.seq != expected_seq:
            problems.append(ChainProblem(expected_seq, f"events {expected_seq}..{event.seq - 1} are missing"))
        if event.prev_hash != expected_prev:
            problems.append(ChainProblem(event.seq, "link to the previous event is broken"))
        version = SHA256 if event.seq <= legacy else HMAC_SHA256
        if event.hash_version != version:
            # Unkeyed hashes are allowed only on the events older than keyed hashes.
            problems.append(ChainProblem(event.seq, "event carries an unkeyed hash where a keyed "
                                         "one is required" if event.hash_version == SHA256 else
                                         f"event's hash version {event.hash_version} is not "
                                         "the one its place in the chain requires"))
        elif not same(event.compute_hash(key), event.hash):
            problems.append(ChainProblem(event.seq, "event was altered after it was written"))
        expected_prev, expected_seq = event.hash, event.seq + 1
    return problems


# The anchors' bookkeeping model lives with the anchor code; importing it here registers it.
from tenants.audit_anchor import AuditAnchorState  # noqa: E402,F401
