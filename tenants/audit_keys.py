"""Secret keys of the audit log, derived from the master key so they never enter the database.

Someone who can write to the database could rewrite audit rows and recompute a plain
SHA-256 chain; with keyed hashes (HMAC-SHA256) they cannot, because the key lives where
the master key lives (CLOUDPACS_MASTER_KEY or var/master.key, see archive/storage/keys.py).
Each use gets its own key (HKDF with a distinct `info`), so a MAC of one kind can never
pass for another.
"""

import base64
import functools
import hashlib
import hmac
import json
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.exceptions import ImproperlyConfigured

from cloudpacs.objectstore.master_key import decode_key, master_key

CHAIN_INFO = b"cloudpacs audit chain v1"
ANCHOR_INFO = b"cloudpacs audit anchor v1"


class AuditKeyError(Exception):
    """The configured master key is missing or is not the one the audit log was written with."""


def _master() -> bytes:
    try:
        return master_key()
    except ImproperlyConfigured as exc:
        raise AuditKeyError(f"cannot verify: wrong or missing master key ({exc})") from None


@functools.lru_cache(maxsize=8)
def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def chain_key() -> bytes:
    """The key of the events' hashes (and of each clinic's key check)."""
    pinned = _pinned()
    return pinned[0] if pinned else _derive(_master(), CHAIN_INFO)


def anchor_key() -> bytes:
    """The key signing the anchors written to the storage regions."""
    pinned = _pinned()
    return pinned[1] if pinned else _derive(_master(), ANCHOR_INFO)


# Pinned keys: the log's hashes cannot be recomputed (its rows are append-only), so when the
# master key is rotated the two keys derived from it so far become secrets of their own
# (CLOUDPACS_AUDIT_KEYS, or AUDIT_KEYS_FILE beside the master key file), the same values:
# the chain goes on unbroken under the new master key, and the old one can be destroyed.

def _pinned() -> tuple[bytes, bytes] | None:
    from django.conf import settings

    if settings.CLOUDPACS_AUDIT_KEYS:
        return _decode_pinned(settings.CLOUDPACS_AUDIT_KEYS)
    try:
        mtime = os.stat(settings.AUDIT_KEYS_FILE).st_mtime_ns
    except FileNotFoundError:
        return None
    return _pinned_file(settings.AUDIT_KEYS_FILE, mtime)


@functools.lru_cache(maxsize=4)
def _pinned_file(path: str, mtime: int) -> tuple[bytes, bytes]:
    with open(path) as fh:
        return _decode_pinned(fh.read().strip())


@functools.lru_cache(maxsize=4)
def _decode_pinned(value: str) -> tuple[bytes, bytes]:
    raw = decode_key(value, 64, "CLOUDPACS_AUDIT_KEYS (or AUDIT_KEYS_FILE)")
    return raw[:32], raw[32:]


def audit_keys_pinned() -> bool:
    return _pinned() is not None


def audit_keys_value() -> str:
    """The value that pins the audit log's keys as they are now (base64 of 64 bytes)."""
    return base64.b64encode(chain_key() + anchor_key()).decode()


def mac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def canonical(fields: dict) -> bytes:
    """The one byte form of a dict that is hashed or signed."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str).encode()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def key_check_mac(key: bytes, tenant_id: int) -> str:
    """A MAC of a fixed string per clinic: tells "wrong master key" from "rows altered"."""
    return mac(key, f"cloudpacs audit key check:{tenant_id}".encode())


def legacy_mac(key: bytes, tenant_id: int, legacy_events: int) -> str:
    """Binds how many of a clinic's first events predate keyed hashes, so that number cannot
    be raised to pass rewritten rows off as old unkeyed ones."""
    return mac(key, f"cloudpacs audit legacy events:{tenant_id}:{legacy_events}".encode())
