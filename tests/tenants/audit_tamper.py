"""What an attacker with write access to the database (but not the master key) can do to
the audit log, for the audit tests.

On PostgreSQL the append-only trigger is switched off first (ALTER TABLE ... DISABLE
TRIGGER), to prove the hash chain and the anchors catch what gets past it."""

import hashlib
import io
import json
from contextlib import contextmanager

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tenants.audit import SHA256, AuditEvent

TRIGGER = "tenants_auditevent_append_only"


@contextmanager
def trigger_disabled():
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        # Inside a test's transaction, Django's deferred foreign-key checks are still
        # pending, and PostgreSQL will not ALTER a table with pending trigger events.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE tenants_auditevent DISABLE TRIGGER {TRIGGER}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE tenants_auditevent ENABLE TRIGGER {TRIGGER}")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def raw_sql(sql, params):
    with trigger_disabled(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def delete_newest(tenant, count: int) -> None:
    """Delete the clinic's newest events through the unscoped manager's queryset (which
    skips the model's delete())."""
    newest = list(AuditEvent.unscoped.filter(tenant=tenant).order_by("-seq")
                  .values_list("pk", flat=True)[:count])
    with trigger_disabled():
        AuditEvent.unscoped.filter(pk__in=newest).delete()


def canonical_fields(event: AuditEvent) -> bytes:
    """The event's hashed fields as canonical JSON, written out here independently of the app."""
    fields = {"tenant": event.tenant_id, "seq": event.seq, "created_at": event.created_at.isoformat(),
              "actor_type": event.actor_type, "actor_id": event.actor_id,
              "actor_label": event.actor_label, "action": event.action,
              "object_type": event.object_type, "object_id": event.object_id, "ip": event.ip,
              "user_agent": event.user_agent, "detail": event.detail, "prev_hash": event.prev_hash}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str).encode()


def plain_sha256(event: AuditEvent) -> str:
    """The hash as the attacker can compute it: the canonical fields, no key."""
    return hashlib.sha256(canonical_fields(event)).hexdigest()


def rewrite_and_rehash(tenant, seq: int, *, actor_label: str, downgrade: bool) -> None:
    """Change event `seq`, then recompute its hash and every later one with plain SHA-256,
    relinking the chain, so it is consistent to anyone without the key. With `downgrade`
    the rows also claim to be legacy (unkeyed) events."""
    events = list(AuditEvent.unscoped.filter(tenant=tenant, seq__gte=seq).order_by("seq"))
    prev = AuditEvent.unscoped.get(tenant=tenant, seq=seq - 1).hash if seq > 1 else "0" * 64
    events[0].actor_label = actor_label
    for event in events:
        event.prev_hash = prev
        event.hash = prev = plain_sha256(event)
        version = SHA256 if downgrade else event.hash_version
        raw_sql("UPDATE tenants_auditevent SET actor_label = %s, prev_hash = %s, hash = %s, "
                "hash_version = %s WHERE id = %s",
                [event.actor_label, event.prev_hash, event.hash, version, event.pk])


def verify(*args) -> str:
    out = io.StringIO()
    call_command("verify_audit", *args, stdout=out)
    return out.getvalue()


def verify_fails(*args, match="Audit chain broken in 1 clinic") -> str:
    out = io.StringIO()
    with pytest.raises(CommandError, match=match):
        call_command("verify_audit", *args, stdout=out)
    return out.getvalue()
