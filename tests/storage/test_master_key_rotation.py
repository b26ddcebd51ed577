"""Rotating the master key: every clinic's data keys re-wrapped, no object re-encrypted,
every instance readable during and after, and after a restart with the old key gone; the
audit chain goes on unbroken; a restore from one region still finds its keys. Two real
SeaweedFS regions; "a restart" is the settings changed and the key caches emptied, as a
new process would start."""

import base64
import json
import os
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from archive.models import Instance
from archive.storage import keys
from archive.storage.integrity import copy_check
from archive.storage.reader import open_instance
from archive.storage.tier1 import tier1_path
from cloudpacs.objectstore import master_key as master
from cloudpacs.objectstore.objects import object_open
from tenants.audit import Actor, AuditKeyError, audit_record, audit_verify
from tests.storage.test_pipeline import drive_all, ingest


def _restart(settings, *, current: str, following: str = "") -> None:
    settings.CLOUDPACS_MASTER_KEY, settings.CLOUDPACS_MASTER_KEY_NEXT = current, following
    master.master_key.cache_clear()
    master.next_master_key.cache_clear()


def _read_all(tenants) -> int:
    read = 0
    for tenant in tenants:
        for instance in Instance.objects.for_tenant(tenant):
            with open_instance(instance) as fh:
                assert len(fh.read()) == instance.size_bytes
            read += 1
    return read


@pytest.fixture
def audit_keys_file(settings, tmp_path):
    settings.AUDIT_KEYS_FILE = str(tmp_path / "audit.keys")
    return settings.AUDIT_KEYS_FILE


def test_rotation_keeps_everything_readable_and_the_old_key_can_go(tenant, other_tenant, s3_regions, settings,
                                                                   master_key, audit_keys_file):
    old, new = master_key, base64.b64encode(os.urandom(32)).decode()
    for clinic in (tenant, other_tenant):
        ingest(clinic, 2)
        keys.data_key_rotate(tenant=clinic)  # two key versions in one clinic
        ingest(clinic, 1)
    drive_all(tenant)
    drive_all(other_tenant)
    objects_before = {i.storage_key: object_open("primary", i.storage_key).read()
                      for t in (tenant, other_tenant) for i in Instance.objects.for_tenant(t)}

    with pytest.raises(CommandError, match="CLOUDPACS_MASTER_KEY_NEXT"):
        call_command("rotate_master_key", stdout=StringIO(), stderr=StringIO())
    _restart(settings, current=old, following=new)  # step 1: every process knows both
    made_meanwhile = keys.data_key_rotate(tenant=tenant)  # a data key made during the rotation
    ingest(tenant, 1)
    drive_all(tenant)
    out, err = StringIO(), StringIO()
    call_command("rotate_master_key", stdout=out, stderr=err)
    assert "re-wrapped 4 data keys" in out.getvalue() and "data keys: 5/5" in err.getvalue()  # not the new one
    assert keys.data_keys_not_under(base64.b64decode(new)) == 0
    assert os.path.exists(audit_keys_file)
    assert _read_all([tenant, other_tenant]) == 7  # readable with both keys configured
    # Resumable: a second run finds nothing left to re-wrap.
    out = StringIO()
    call_command("rotate_master_key", stdout=out, stderr=StringIO())
    assert "re-wrapped 0 data keys" in out.getvalue()

    _restart(settings, current=new)  # step 3: the old key is gone
    for clinic in (tenant, other_tenant):
        for instance in Instance.objects.for_tenant(clinic):
            tier1_path(instance.storage_key).unlink()  # read from the regions, decrypted anew
    assert _read_all([tenant, other_tenant]) == 7
    for clinic in (tenant, other_tenant):
        for instance in Instance.objects.for_tenant(clinic):
            for region in ("primary", "secondary"):
                assert copy_check(instance, region).ok
        assert audit_verify(tenant=clinic) == []  # the chain, across the rotation event
    # No object was re-encrypted.
    assert {k: object_open("primary", k).read() for k in objects_before} == objects_before
    # The regions' key documents are under the new key: a restore from one region finds them.
    for row in keys.DataKey.objects.for_tenant(tenant):
        doc = json.loads(object_open("secondary", f"_keys/{row.pk}.json").read())
        assert doc["master_key_id"] == master.key_id(base64.b64decode(new))
        assert keys.key_import(doc).pk == row.pk

    assert made_meanwhile.pk in {row.pk for row in keys.DataKey.objects.for_tenant(tenant)}
    # A process given the new master key but not the pinned audit keys refuses to write
    # audit events (they would be lost to verification) rather than break the chain.
    settings.AUDIT_KEYS_FILE = audit_keys_file + ".missing"
    with pytest.raises(AuditKeyError), transaction.atomic():
        audit_record(tenant=tenant, actor=Actor.system("test"), action="test.event")
    settings.AUDIT_KEYS_FILE = audit_keys_file

    _restart(settings, current=old)  # only the old key: nothing unwraps any more
    with pytest.raises(keys.KeyUnavailable):
        keys.data_key_for(tenant_id=tenant.pk, key_id=keys.DataKey.objects.for_tenant(tenant).first().pk)


def test_next_key_equal_to_the_master_key_is_refused(settings, master_key, audit_keys_file, db):
    _restart(settings, current=master_key, following=master_key)
    with pytest.raises(CommandError, match="already"):
        call_command("rotate_master_key", stdout=StringIO(), stderr=StringIO())
    assert not os.path.exists(audit_keys_file)
