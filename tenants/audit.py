"""The append-only audit log, one hash chain per clinic.

Each event stores the hash of the one before it in the same clinic and a hash over its
own fields, so changing, deleting or reordering a row breaks the chain, and
`manage.py verify_audit` finds where.
"""

import hashlib
import json
from dataclasses import dataclass

from django.db import models, transaction
from django.utils import timezone

from tenants.scoping import TenantOwned

GENESIS_HASH = "0" * 64


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

    class Meta:
        ordering = ["-seq"]
        constraints = [models.UniqueConstraint(fields=["tenant", "seq"], name="uniq_audit_seq")]
        indexes = [models.Index(fields=["tenant", "-seq"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_label or self.actor_type}"

    def compute_hash(self) -> str:
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
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("audit events are never changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit events are never deleted")


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
        event = AuditEvent(
            tenant=tenant, seq=seq, actor_type=actor.type, actor_id=str(actor.id or "")[:64],
            actor_label=(actor.label or "")[:254], action=action, object_type=obj_type,
            object_id=str(obj_id)[:128], ip=actor.ip or None,
            user_agent=(actor.user_agent or "")[:300], detail=detail or {}, prev_hash=prev_hash,
        )
        event.hash = event.compute_hash()
        event.save()
    return event


@dataclass
class ChainProblem:
    seq: int
    problem: str


def audit_verify(*, tenant) -> list[ChainProblem]:
    """Walk a clinic's chain from the start; return every place it is broken."""
    problems: list[ChainProblem] = []
    expected_prev, expected_seq = GENESIS_HASH, 1
    events = AuditEvent.objects.for_tenant(tenant).order_by("seq").iterator(chunk_size=2000)
    for event in events:
        if event.seq != expected_seq:
            problems.append(ChainProblem(expected_seq, f"events {expected_seq}..{event.seq - 1} are missing"))
        if event.prev_hash != expected_prev:
            problems.append(ChainProblem(event.seq, "link to the previous event is broken"))
        if event.compute_hash() != event.hash:
            problems.append(ChainProblem(event.seq, "event was altered after it was written"))
        expected_prev, expected_seq = event.hash, event.seq + 1
    return problems
