import base64
import io
import os

import pytest
from django.core.exceptions import ImproperlyConfigured

from archive.storage import keys
from archive.storage.models import DataKey
from cloudpacs.objectstore import crypto


def test_data_key_created_on_first_use_and_stored_wrapped(tenant):
    key_id, key = keys.active_data_key(tenant=tenant)
    row = DataKey.objects.for_tenant(tenant).get()
    assert (row.pk, row.version, row.active) == (key_id, 1, True)
    assert len(key) == 32 and key not in bytes(row.wrapped)
    assert keys.active_data_key(tenant=tenant) == (key_id, key)


def test_rotation_keeps_old_objects_readable(tenant):
    old_id, old_key = keys.active_data_key(tenant=tenant)
    blob = b"".join(crypto.encrypt_chunks(io.BytesIO(b"old study"), data_key=old_key, key_id=old_id))
    rotated = keys.data_key_rotate(tenant=tenant)
    new_id, new_key = keys.active_data_key(tenant=tenant)
    assert (new_id, rotated.version) == (rotated.pk, 2) and new_key != old_key
    lookup = lambda kid: keys.data_key_for(tenant_id=tenant.pk, key_id=kid)  # noqa: E731
    assert crypto.read_key_id(io.BytesIO(blob)) == old_id
    assert b"".join(crypto.decrypt_chunks(io.BytesIO(blob), key_lookup=lookup)) == b"old study"


def test_keys_are_per_clinic(tenant, other_tenant):
    key_id, key = keys.active_data_key(tenant=tenant)
    other_id, other_key = keys.active_data_key(tenant=other_tenant)
    assert key != other_key
    with pytest.raises(keys.KeyUnavailable, match="unknown"):
        keys.data_key_for(tenant_id=other_tenant.pk, key_id=key_id)


def test_wrong_master_key_is_a_clear_error(tenant, settings):
    key_id, _ = keys.active_data_key(tenant=tenant)
    settings.CLOUDPACS_MASTER_KEY = base64.b64encode(os.urandom(32)).decode()
    keys.master_key.cache_clear()
    with pytest.raises(keys.KeyUnavailable, match="CLOUDPACS_MASTER_KEY"):
        keys.data_key_for(tenant_id=tenant.pk, key_id=key_id)


def test_malformed_master_key_refused(settings):
    settings.CLOUDPACS_MASTER_KEY = "dG9vIHNob3J0"
    keys.master_key.cache_clear()
    with pytest.raises(ImproperlyConfigured, match="32 bytes"):
        keys.master_key()


def test_embedded_mode_generates_a_private_key_file(settings, tmp_path):
    settings.CLOUDPACS_MASTER_KEY = ""
    settings.MASTER_KEY_FILE = str(tmp_path / "master.key")
    keys.master_key.cache_clear()
    first = keys.master_key()
    keys.master_key.cache_clear()
    assert keys.master_key() == first and len(first) == 32
    assert (os.stat(settings.MASTER_KEY_FILE).st_mode & 0o777) == 0o600


def test_production_refuses_to_run_without_master_key(settings):
    settings.CLOUDPACS_MASTER_KEY = ""
    settings.PRODUCTION = True
    keys.master_key.cache_clear()
    with pytest.raises(ImproperlyConfigured, match="not set"):
        keys.master_key()


def test_a_data_key_is_looked_up_once_per_process(tenant, django_assert_num_queries):
    """A viewer opens one instance per frame request: the key's row is read and unwrapped
    once, not once per request."""
    key_id, key = keys.active_data_key(tenant=tenant)
    keys.key_cache_clear()
    with django_assert_num_queries(1):
        assert keys.data_key_for(tenant_id=tenant.pk, key_id=key_id) == key
    with django_assert_num_queries(0):
        assert keys.data_key_for(tenant_id=tenant.pk, key_id=key_id) == key
    with pytest.raises(keys.KeyUnavailable):  # another clinic's id is still refused
        keys.data_key_for(tenant_id=tenant.pk + 1000, key_id=key_id)


def test_the_key_cache_is_emptied_when_a_key_row_changes(tenant, settings):
    key_id, key = keys.active_data_key(tenant=tenant)
    assert keys.data_key_for(tenant_id=tenant.pk, key_id=key_id) == key
    keys.data_key_rotate(tenant=tenant)  # a saved row: a reused id must not find an old key
    assert keys._key_cache == {}
    # ... and a process given another master key does not go on with the old one's keys.
    assert keys.data_key_for(tenant_id=tenant.pk, key_id=key_id) == key
    settings.CLOUDPACS_MASTER_KEY = base64.b64encode(os.urandom(32)).decode()
    keys.master_key.cache_clear()
    with pytest.raises(keys.KeyUnavailable):
        keys.data_key_for(tenant_id=tenant.pk, key_id=key_id)


def test_a_kept_key_is_looked_up_again_after_a_while_and_a_raced_clearing_keeps_nothing(
        tenant, django_assert_num_queries, monkeypatch):
    """What another process changes (a restore) is seen within KEY_CACHE_SECONDS; a key read
    while this process emptied the cache is not kept (it may be the old one)."""
    key_id, key = keys.active_data_key(tenant=tenant)
    keys.key_cache_clear()
    monkeypatch.setattr(keys, "KEY_CACHE_SECONDS", 0)
    for _ in range(2):
        with django_assert_num_queries(1):
            assert keys.data_key_for(tenant_id=tenant.pk, key_id=key_id) == key
    monkeypatch.setattr(keys, "KEY_CACHE_SECONDS", 600)
    keys.key_cache_clear()
    real_row_key = keys._row_key

    def row_key_while_cleared(row, clinic):
        keys.key_cache_clear()  # as a key row saved meanwhile would
        return real_row_key(row, clinic)

    monkeypatch.setattr(keys, "_row_key", row_key_while_cleared)
    assert keys.data_key_for(tenant_id=tenant.pk, key_id=key_id) == key
    assert keys._key_cache == {}
