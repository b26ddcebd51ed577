"""The master key: it wraps the clinics' data keys and keys the audit log's hashes.

It lives outside the database: CLOUDPACS_MASTER_KEY (base64 of 32 bytes) or, in the
embedded mode only, a file generated once under var/ (settings.MASTER_KEY_FILE).
Production refuses to start without the variable (see settings.py).
"""

import base64
import functools
import hashlib
import logging
import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)


def decode_key(value: str, size: int, name: str) -> bytes:
    """The bytes of a key given as base64 of exactly `size` bytes; `name` is what an
    operator set, for the error."""
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError:
        key = b""
    if len(key) != size:
        raise ImproperlyConfigured(f"{name} must be base64 of exactly {size} bytes")
    return key


def _decode_master(value: str) -> bytes:
    return decode_key(value, 32, "CLOUDPACS_MASTER_KEY")


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


def key_id(key: bytes) -> str:
    """A short fingerprint of a master key, safe to log and show."""
    return hashlib.sha256(b"cloudpacs-master-key-id" + key).hexdigest()[:16]


def master_key_id() -> str:
    return key_id(master_key())


@functools.cache
def next_master_key() -> bytes | None:
    """The key a rotation is moving to (CLOUDPACS_MASTER_KEY_NEXT), or None."""
    value = settings.CLOUDPACS_MASTER_KEY_NEXT
    if not value:
        return None
    return decode_key(value, 32, "CLOUDPACS_MASTER_KEY_NEXT")


def master_keys() -> list[bytes]:
    """The keys a wrapped data key may be under: the master key, and during a rotation the
    next one."""
    following = next_master_key()
    return [master_key()] + ([following] if following and following != master_key() else [])
