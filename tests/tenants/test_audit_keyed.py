"""Audit hashes are keyed (HMAC-SHA256, key derived from the master key): rows rewritten and
re-hashed by someone without the key are found, and a wrong key is named as such."""

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tenants.audit import SHA256, Actor, AuditEvent, AuditKeyCheck, audit_record, audit_verify
from tenants.audit_keys import chain_key, key_check_mac, legacy_mac
from tests.tenants.audit_tamper import (
    canonical_fields,
    plain_sha256,
    raw_sql,
    rewrite_and_rehash,
    verify,
    verify_fails,
)
from tests.tenants.conftest import use_master_key

pytestmark = pytest.mark.usefixtures("audit_master_key", "audit_regions")
WRONG_KEY = "cannot verify: wrong or missing master key"


@pytest.fixture
def log(tenant):
    for i in range(3):
        audit_record(tenant=tenant, actor=Actor.system(), action="study.viewed", obj_type="study",
                     obj_id=str(i))
    return tenant  # events 1..2 from the clinic's creation, 3..5 above


def test_hash_is_an_hmac_under_a_key_derived_from_the_master_key(log, audit_master_key):
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"cloudpacs audit chain v1").derive(audit_master_key)
    for event in AuditEvent.objects.for_tenant(log).order_by("seq"):
        assert event.hash_version == 2
        assert event.hash == hmac.new(key, canonical_fields(event), hashlib.sha256).hexdigest()
        assert event.hash != plain_sha256(event)
    assert audit_verify(tenant=log) == []


@pytest.mark.parametrize("downgrade", [False, True], ids=["kept-version", "claims-legacy"])
def test_rows_rewritten_and_rehashed_with_plain_sha256_are_found(log, other_tenant, downgrade):
    rewrite_and_rehash(log, 4, actor_label="nobody", downgrade=downgrade)
    out = verify_fails()
    problem = ("event carries an unkeyed hash where a keyed one is required" if downgrade
               else "event was altered after it was written")
    for seq in (4, 5):
        assert f"acme: event {seq}: {problem}" in out
    assert "acme: event 3:" not in out
    assert "link to the previous event is broken" not in out  # the attacker relinked it
    assert "other: 2 events, chain intact" in out


def test_wrong_master_key_is_named_not_every_row_flagged(log, other_tenant, settings):
    use_master_key(settings, "A" * 43 + "=")  # base64 of 32 other bytes
    out = verify_fails(match=WRONG_KEY)
    assert f"acme: {WRONG_KEY}" in out and f"other: {WRONG_KEY}" in out
    assert "altered" not in out
    with pytest.raises(Exception, match=WRONG_KEY):
        audit_verify(tenant=log)


def test_missing_master_key_is_named(log, settings):
    settings.PRODUCTION = True  # the embedded mode would generate a key file instead
    use_master_key(settings, "")
    out = verify_fails(match=WRONG_KEY)
    assert "altered" not in out


def make_legacy(tenant, legacy: int) -> None:
    """The clinic as an upgrade leaves it: its first `legacy` events hashed with plain
    SHA-256 before keys existed, sealed by the migration's key check row."""
    rewrite_and_rehash(tenant, 1, actor_label="before the upgrade", downgrade=True)
    for event in AuditEvent.objects.for_tenant(tenant).filter(seq__gt=legacy).order_by("seq"):
        event.hash_version = 2  # relink the keyed part to the rewritten legacy part
        event.prev_hash = AuditEvent.objects.for_tenant(tenant).get(seq=event.seq - 1).hash
        event.hash = event.compute_hash()
        raw_sql("UPDATE tenants_auditevent SET prev_hash = %s, hash = %s, hash_version = 2 "
                "WHERE id = %s", [event.prev_hash, event.hash, event.pk])
    key = chain_key()
    AuditKeyCheck.objects.for_tenant(tenant).update(
        legacy_events=legacy, key_check=key_check_mac(key, tenant.pk),
        legacy_mac=legacy_mac(key, tenant.pk, legacy))


def test_legacy_events_before_keys_verify_but_only_up_to_the_sealed_count(log):
    make_legacy(log, 3)
    assert list(AuditEvent.objects.for_tenant(log).order_by("seq")
                .values_list("hash_version", flat=True)) == [SHA256] * 3 + [2] * 2
    assert "acme: 5 events, chain intact" in verify("acme")
    # Raising the count to pass a rewritten keyed event off as a legacy one needs the key.
    rewrite_and_rehash(log, 4, actor_label="nobody", downgrade=True)
    AuditKeyCheck.objects.for_tenant(log).update(legacy_events=5)
    out = verify_fails("acme")
    assert "acme: the clinic's key check record was altered" in out
    assert "acme: event 4: event carries an unkeyed hash where a keyed one is required" in out


def test_deleted_key_check_is_found(log):
    AuditKeyCheck.objects.for_tenant(log).delete()
    assert "acme: the clinic's key check record is missing" in verify_fails("acme")
