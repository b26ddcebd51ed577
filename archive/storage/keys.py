"""Envelope encryption keys: one data key per clinic, wrapped by the master key.

The master key lives outside the database: CLOUDPACS_MASTER_KEY (base64 of 32 bytes) or,
in the embedded mode only, a file generated once under var/ (settings.MASTER_KEY_FILE).
Production refuses to start without the variable (see settings.py).
"""

import base64
import functools
import hashlib
import io
import json
import logging
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

from archive.storage.models import DataKey

log = logging.getLogger(__name__)


class KeyUnavailable(Exception):
    """A data key cannot be unwrapped or found (wrong master key, unknown key id)."""


def _decode_master(value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ImproperlyConfigured("CLOUDPACS_MASTER_KEY must be base64 of exactly 32 bytes")
    return key


@functools.cache
def master_key() -> bytes:
    if settings.CLOUDPACS_MASTER_KEY:
        return _decode_master(settings.CLOUDPACS_MASTER_KEY)
    if settings.PRODUCTION:
        raise ImproperlyConfigured("CLOUDPACS_MASTER_KEY is not set")
    path = Path(settings.MASTER_KEY_FILE)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it a moment ago
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(base64.b64encode(os.urandom(32)).decode() + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            log.warning("generated a master key in %s (embedded mode). Back it up: without it "
                        "the archive cannot be decrypted. Set CLOUDPACS_MASTER_KEY in production.",
                        path)
    return _decode_master(path.read_text().strip())


def master_key_id() -> str:
    """A short fingerprint of the master key, safe to log and show."""
    return hashlib.sha256(b"cloudpacs-master-key-id" + master_key()).hexdigest()[:16]


def _aad(tenant_id: int, version: int) -> bytes:
    # Binds a wrapped key to its clinic and version: a row copied elsewhere will not unwrap.
    return f"cloudpacs-data-key:{tenant_id}:{version}".encode()


def _wrap(key: bytes, tenant_id: int, version: int) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(master_key()).encrypt(nonce, key, _aad(tenant_id, version))


def unwrap(wrapped: bytes, tenant_id: int, version: int) -> bytes:
    try:
        return AESGCM(master_key()).decrypt(bytes(wrapped[:12]), bytes(wrapped[12:]),
                                            _aad(tenant_id, version))
    except InvalidTag:
        raise KeyUnavailable(f"data key v{version} of clinic {tenant_id} does not unwrap with the "
                        f"configured master key ({master_key_id()}); is CLOUDPACS_MASTER_KEY "
                        "the one this archive was written with?") from None


def data_key_rotate(*, tenant) -> DataKey:
    """Make a new data key version the clinic's active one; old versions stay readable."""
    with transaction.atomic():
        last = DataKey.objects.for_tenant(tenant).select_for_update().order_by("-version").first()
        version = (last.version + 1) if last else 1
        DataKey.objects.for_tenant(tenant).filter(active=True).update(active=False)
        return DataKey.objects.for_tenant(tenant).create(
            version=version, wrapped=_wrap(os.urandom(32), tenant.pk, version), active=True)


def active_data_key(*, tenant) -> tuple[int, bytes]:
    """(key id, key) of the clinic's active data key, created on first use."""
    row = DataKey.objects.for_tenant(tenant).filter(active=True).first()
    if row is None:
        try:
            row = data_key_rotate(tenant=tenant)
        except IntegrityError:  # a concurrent first use created version 1
            row = DataKey.objects.for_tenant(tenant).get(active=True)
    return row.pk, unwrap(row.wrapped, tenant.pk, row.version)


_exported: set[tuple[str, int]] = set()


def key_export(*, region: str, key_id: int) -> None:
    """Keep a (still wrapped) copy of a data key beside the objects in `region`, so the
    archive can be rebuilt from that region alone (restore_from_region). Safe to publish:
    without the master key it is useless."""
    from archive.storage.objects import object_exists, object_put

    if (region, key_id) in _exported:
        return
    name = f"_keys/{key_id}.json"
    if not object_exists(region, name):
        row = DataKey.unscoped.select_related("tenant").get(pk=key_id)
        doc = {"key_id": row.pk, "tenant_id": row.tenant_id, "tenant_slug": row.tenant.slug,
               "version": row.version, "wrapped": base64.b64encode(bytes(row.wrapped)).decode(),
               "master_key_id": master_key_id(), "created_at": row.created_at.isoformat()}
        object_put(region, name, io.BytesIO(json.dumps(doc).encode()))
    _exported.add((region, key_id))


def key_import(doc: dict) -> DataKey:
    """Recreate a data key row from its exported copy (same id, same wrapped bytes)."""
    row, _ = DataKey.unscoped.get_or_create(
        pk=doc["key_id"], defaults={"tenant_id": doc["tenant_id"], "version": doc["version"],
                                    "wrapped": base64.b64decode(doc["wrapped"]), "active": False})
    if row.tenant_id != doc["tenant_id"]:
        raise KeyUnavailable(f"data key {row.pk} belongs to another clinic here than in the region")
    unwrap(row.wrapped, row.tenant_id, row.version)  # fails loudly with a wrong master key
    return row


def data_key_for(*, tenant_id: int, key_id: int) -> bytes:
    """The data key named in an object's header; it must belong to that clinic."""
    row = DataKey.unscoped.filter(pk=key_id, tenant_id=tenant_id).first()
    if row is None:
        raise KeyUnavailable(f"data key {key_id} of clinic {tenant_id} is unknown")
    return unwrap(row.wrapped, tenant_id, row.version)
