"""Envelope encryption keys: one data key per clinic, wrapped by the master key.

The master key (cloudpacs/objectstore/master_key.py) lives outside the database.
"""

import base64
import io
import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import IntegrityError, transaction
from django.db.models import IntegerField

from archive.storage.models import DataKey
from cloudpacs.compiled_query import CompiledQuery, Slot, fields_in_order, models_from_row
from cloudpacs.objectstore.master_key import (
    key_id,
    master_key,
    master_key_id,
    master_keys,
    next_master_key,
)

log = logging.getLogger(__name__)


class KeyUnavailable(Exception):
    """A data key cannot be unwrapped or found (wrong master key, unknown key id)."""


# A wrapped key binds (as AAD) the clinic's durable uuid and the key version, so a row or
# key document handed to another clinic will not unwrap, whatever numeric ids the clinics
# have in this database: WRAP_V2 | nonce(12) | sealed key(48). Keys wrapped before that
# (nonce | sealed key, 60 bytes) bound the numeric clinic id; they still unwrap with it, are
# re-wrapped when exported (key_export) or upgraded (upgrade_data_keys), and a restore
# re-wraps them for the clinic it matched by slug.
WRAP_V2 = b"CPK2"
_V2_SIZE = len(WRAP_V2) + 12 + 32 + 16


def _aad(tenant_uuid, version: int) -> bytes:
    return f"cloudpacs-data-key:v2:{tenant_uuid}:{version}".encode()


def _legacy_aad(tenant_id: int, version: int) -> bytes:
    return f"cloudpacs-data-key:{tenant_id}:{version}".encode()


def is_legacy(wrapped: bytes) -> bool:
    wrapped = bytes(wrapped)
    return not (len(wrapped) == _V2_SIZE and wrapped.startswith(WRAP_V2))


def _wrapping_key() -> bytes:
    """What new wraps are made under: during a rotation the next key already, so a data key
    made meanwhile (a clinic's first upload) does not stay under the key being retired."""
    return next_master_key() or master_key()


def _wrap(key: bytes, tenant_uuid, version: int, master: bytes | None = None) -> bytes:
    nonce = os.urandom(12)
    return WRAP_V2 + nonce + AESGCM(master or _wrapping_key()).encrypt(nonce, key, _aad(tenant_uuid, version))


def unwrap(wrapped: bytes, *, tenant_uuid, legacy_tenant_id: int, version: int) -> bytes:
    """The data key; `legacy_tenant_id` is the numeric clinic id an old-format key is bound to."""
    wrapped = bytes(wrapped)
    if is_legacy(wrapped):
        nonce, sealed, aad = wrapped[:12], wrapped[12:], _legacy_aad(legacy_tenant_id, version)
    else:
        nonce, sealed, aad = wrapped[4:16], wrapped[16:], _aad(tenant_uuid, version)
    for master in master_keys():  # during a rotation a key may be under either
        try:
            return AESGCM(master).decrypt(nonce, sealed, aad)
        except InvalidTag:
            continue
    raise KeyUnavailable(f"data key v{version} of clinic {tenant_uuid} does not unwrap with the "
                        f"configured master key ({master_key_id()}); is CLOUDPACS_MASTER_KEY "
                        "the one this archive was written with?")


_KEY_FIELDS = fields_in_order(DataKey)


def _row_key(row: DataKey, tenant) -> bytes:
    return unwrap(row.wrapped, tenant_uuid=tenant.uuid, legacy_tenant_id=tenant.pk, version=row.version)


def data_key_rotate(*, tenant) -> DataKey:
    """Make a new data key version the clinic's active one; old versions stay readable."""
    with transaction.atomic():
        last = DataKey.objects.for_tenant(tenant).select_for_update().order_by("-version").first()
        version = (last.version + 1) if last else 1
        DataKey.objects.for_tenant(tenant).filter(active=True).update(active=False)
        return DataKey.objects.for_tenant(tenant).create(
            version=version, wrapped=_wrap(os.urandom(32), tenant.uuid, version), active=True)


# Asked by every ingest request and DICOM association: compiled once (cloudpacs/compiled_query.py).
_active_key = CompiledQuery(lambda: DataKey.unscoped.filter(
    tenant_id=Slot("tenant", IntegerField()), active=True).order_by("pk").values_list(*_KEY_FIELDS)[:1])


def active_data_key(*, tenant) -> tuple[int, bytes]:
    """(key id, key) of the clinic's active data key, created on first use."""
    found = _active_key.rows(tenant=tenant.pk)
    row = models_from_row(found[0], (DataKey, _KEY_FIELDS))[0] if found else None
    if row is None:
        try:
            row = data_key_rotate(tenant=tenant)
        except IntegrityError:  # a concurrent first use created version 1
            row = DataKey.objects.for_tenant(tenant).get(active=True)
    return row.pk, _row_key(row, tenant)


_exported: set[tuple[str, int]] = set()


def key_export(*, region: str, key_id: int) -> None:
    """Keep a (still wrapped) copy of a data key beside the objects in `region`, so the
    archive can be rebuilt from that region alone (restore_from_region). Safe to publish:
    without the master key it is useless."""
    from cloudpacs.objectstore.objects import object_exists, object_put

    if (region, key_id) in _exported:
        return
    name = f"_keys/{key_id}.json"
    if not object_exists(region, name):
        row = _upgraded(DataKey.unscoped.select_related("tenant").get(pk=key_id))
        object_put(region, name, io.BytesIO(json.dumps(_key_doc(row)).encode()))
    _exported.add((region, key_id))


def _key_doc(row: DataKey, master: bytes | None = None) -> dict:
    """`master`: the key the row is wrapped under, when not the master key (a rotation)."""
    return {"key_id": row.pk, "tenant_uuid": str(row.tenant.uuid), "tenant_slug": row.tenant.slug,
            "tenant_id": row.tenant_id, "version": row.version,
            "wrapped": base64.b64encode(bytes(row.wrapped)).decode(),
            "master_key_id": key_id(master or _wrapping_key()), "created_at": row.created_at.isoformat()}


def data_keys_rewrap(*, to: bytes, regions, report=lambda done, total: None) -> int:
    """Wrap every clinic's data keys under the master key `to` (a rotation's next key) and
    replace their key documents in `regions`; the objects are not touched. Resumable: a key
    under `to` already is left as it is (its document is written again). Returns how many
    were re-wrapped."""
    from cloudpacs.objectstore.objects import object_put

    rows = list(DataKey.unscoped.select_related("tenant").order_by("pk"))
    rewrapped = 0
    for done, row in enumerate(rows, start=1):
        row = DataKey.unscoped.select_related("tenant").get(pk=row.pk)  # as it is now
        key = _row_key(row, row.tenant)
        if is_legacy(row.wrapped) or not _under(row, to):
            row.wrapped = _wrap(key, row.tenant.uuid, row.version, master=to)
            DataKey.unscoped.filter(pk=row.pk).update(wrapped=row.wrapped)
            rewrapped += 1
        for region in regions:
            object_put(region, f"_keys/{row.pk}.json", io.BytesIO(json.dumps(_key_doc(row, master=to)).encode()))
        report(done, len(rows))
    key_cache_clear()  # keys unwrapped under the old wrapping are not kept past it
    return rewrapped


def data_keys_not_under(master: bytes) -> int:
    """How many data keys do not unwrap under `master` (none, before an old key may go)."""
    return sum(1 for row in DataKey.unscoped.select_related("tenant") if is_legacy(row.wrapped) or not _under(row, master))


def _under(row: DataKey, master: bytes) -> bool:
    wrapped = bytes(row.wrapped)
    try:
        AESGCM(master).decrypt(wrapped[4:16], wrapped[16:], _aad(row.tenant.uuid, row.version))
        return True
    except InvalidTag:
        return False


def _upgraded(row: DataKey) -> DataKey:
    """The row, its key re-wrapped bound to the clinic's uuid if it was wrapped the old way."""
    if is_legacy(row.wrapped):
        row.wrapped = _wrap(_row_key(row, row.tenant), row.tenant.uuid, row.version)
        DataKey.unscoped.filter(pk=row.pk).update(wrapped=row.wrapped)
    return row


def data_keys_upgrade(regions) -> int:
    """Re-wrap every old-format data key for its clinic's uuid and replace its key document in
    `regions`, so a later restore matches it by uuid (not by slug). Returns how many."""
    from cloudpacs.objectstore.objects import object_put

    upgraded = 0
    for row in DataKey.unscoped.select_related("tenant").order_by("pk"):
        if not is_legacy(row.wrapped):
            continue
        _upgraded(row)
        for region in regions:
            object_put(region, f"_keys/{row.pk}.json", io.BytesIO(json.dumps(_key_doc(row)).encode()))
        upgraded += 1
    return upgraded


class KeyRefused(Exception):
    """A region's key document names a clinic that is not here, or is not that clinic's key."""


def _doc_clinic(doc: dict, wrapped: bytes):
    from tenants.models import Tenant

    slug = doc.get("tenant_slug")
    if is_legacy(wrapped):  # old documents name the clinic by slug only (not authenticated)
        tenant = Tenant.objects.filter(slug=slug).first() if slug else None
        if tenant is None:
            raise KeyRefused(f"clinic {slug!r} (old-format key, matched by slug) is not here")
        return tenant
    try:
        ident = uuid.UUID(str(doc.get("tenant_uuid")))
    except ValueError:
        raise KeyRefused("the key document names no clinic uuid") from None
    tenant = Tenant.objects.filter(uuid=ident).first()
    if tenant is None:
        raise KeyRefused(f"clinic {slug!r} ({ident}) is not here: re-create it with "
                         f"create_tenant {slug} --uuid {ident}")
    return tenant


def key_import(doc: dict) -> DataKey:
    """Recreate a data key row from its exported copy (same id), for the clinic whose durable
    identity the key is bound to. Raises KeyRefused when that clinic is not here or the key
    is not its own, KeyUnavailable when the master key is not the one it was wrapped with."""
    wrapped = base64.b64decode(doc["wrapped"])
    tenant, version = _doc_clinic(doc, wrapped), int(doc["version"])
    try:
        key = unwrap(wrapped, tenant_uuid=tenant.uuid, legacy_tenant_id=doc.get("tenant_id"), version=version)
    except KeyUnavailable:
        if doc.get("master_key_id") not in {key_id(k) for k in master_keys()}:
            raise  # the wrong master key: nothing will unwrap, stop
        raise KeyRefused(f"data key {doc['key_id']} is not a key of clinic {tenant.slug!r}") from None
    row = DataKey.unscoped.select_related("tenant").filter(pk=doc["key_id"]).first()
    if row is None:
        try:
            with transaction.atomic():
                return DataKey.unscoped.create(
                    pk=doc["key_id"], tenant=tenant, version=version, active=False,
                    wrapped=wrapped if not is_legacy(wrapped) else _wrap(key, tenant.uuid, version))
        except IntegrityError:
            raise KeyRefused(f"clinic {tenant.slug!r} has another data key v{version} here already") from None
    if row.tenant_id != tenant.pk or _row_key(row, row.tenant) != key:
        raise KeyRefused(f"data key {row.pk} belongs to another clinic here than in the region")
    return row


# Unwrapped data keys this process has used. A key's bytes never change for its (clinic,
# id): rotation adds a key, a master-key rotation re-wraps the same bytes. So a viewer's
# frame requests, each opening one instance, skip a query and an unwrap each.
# - Keyed by the master keys' fingerprints too: a process given other master keys does not
#   go on with the old ones' keys.
# - Emptied after a re-wrap, and when a key row is saved or deleted in this process (tests
#   reuse ids after a rollback); a look-up that raced such a clearing keeps nothing.
# - Kept KEY_CACHE_SECONDS at most, for what another process changes (a restore).
# - Bounded: the least recently used go first.
KEY_CACHE_SIZE = 4096
KEY_CACHE_SECONDS = 600
_fingerprint = key_id  # (data_key_for's parameter takes the name)
_key_cache: OrderedDict[tuple, tuple[float, bytes]] = OrderedDict()
_key_cache_lock = threading.Lock()
_key_cache_generation = 0


def key_cache_clear(**_) -> None:
    global _key_cache_generation
    with _key_cache_lock:
        _key_cache.clear()
        _key_cache_generation += 1


def data_key_for(*, tenant_id: int, key_id: int) -> bytes:
    """The data key named in an object's header; it must belong to that clinic."""
    cache_key = (tenant_id, key_id, *map(_fingerprint, master_keys()))
    now = time.monotonic()
    with _key_cache_lock:
        cached = _key_cache.get(cache_key)
        if cached is not None and now - cached[0] < KEY_CACHE_SECONDS:
            _key_cache.move_to_end(cache_key)
            return cached[1]
        generation = _key_cache_generation
    row = DataKey.unscoped.select_related("tenant").filter(pk=key_id, tenant_id=tenant_id).first()
    if row is None:
        raise KeyUnavailable(f"data key {key_id} of clinic {tenant_id} is unknown")
    key = _row_key(row, row.tenant)
    with _key_cache_lock:
        if generation == _key_cache_generation:
            _key_cache[cache_key] = (now, key)
            _key_cache.move_to_end(cache_key)
            while len(_key_cache) > KEY_CACHE_SIZE:
                _key_cache.popitem(last=False)
    return key
