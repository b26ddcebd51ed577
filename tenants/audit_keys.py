"""Secret keys of the audit log, derived from the master key so they never enter the database.

Someone who can write to the database could rewrite audit rows and recompute a plain
SHA-256 chain; with keyed hashes (HMAC-SHA256) they cannot, because the key lives where
the master key lives (CLOUDPACS_MASTER_KEY or var/master.key, see archive/storage/keys.py).
Each use gets its own key (HKDF with a distinct `info`), so a MAC of one kind can never
pass for another.
"""

import functools
import hashlib
import hmac
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.exceptions import ImproperlyConfigured

from cloudpacs.objectstore.master_key import master_key

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
    return _derive(_master(), CHAIN_INFO)


def anchor_key() -> bytes:
    """The key signing the anchors written to the storage regions."""
    return _derive(_master(), ANCHOR_INFO)


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
