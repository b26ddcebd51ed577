"""Streaming authenticated encryption of archived objects.

The layout follows Tink's AES-GCM-HKDF streaming AEAD and the STREAM construction
(Hoang, Reyhanitabar, Rogaway, Vizár 2015), built on `cryptography`'s AESGCM:

    header  = MAGIC(4) | VERSION(1) | segment size(4) | key id(8) | salt(16) | nonce prefix(7)
    segment = AES-GCM(k, nonce prefix | counter(4) | last flag(1), plaintext segment) + tag(16)

`k` = HKDF-SHA256(data key, salt, info=header): a fresh key per object, so the random
7-byte nonce prefix never has to be unique across objects, and any change to the header
(key id, segment size) changes the key and fails authentication. The counter stops
reordering, the last-segment flag stops truncation at a segment boundary. The key id in
the header lets old objects keep their key after a rotation. Memory use is one segment.
"""

import hashlib
import io
import os
import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"CPE\x00"
VERSION = 1
SEGMENT_SIZE = 1024 * 1024
TAG_SIZE = 16
_HEADER = struct.Struct(">4sBIQ16s7s")
HEADER_SIZE = _HEADER.size


class DecryptionError(Exception):
    """The ciphertext is not ours, was altered, truncated or reordered, or the key is wrong."""


def _unauthentic(segment: int) -> DecryptionError:
    return DecryptionError(f"segment {segment} failed authentication "
                           "(altered, truncated, reordered, or wrong key)")


def _object_key(data_key: bytes, header: bytes, salt: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=header)
    return AESGCM(hkdf.derive(data_key))


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter >= 2**32:
        raise ValueError("object too large for this format")
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


def parse_header(header: bytes) -> tuple[int, int, bytes, bytes]:
    """(segment size, key id, salt, nonce prefix) of a header; raises DecryptionError."""
    if len(header) < HEADER_SIZE:
        raise DecryptionError("object shorter than the encryption header")
    magic, version, segment_size, key_id, salt, prefix = _HEADER.unpack(header[:HEADER_SIZE])
    if magic != MAGIC:
        raise DecryptionError("not a CloudPACS encrypted object")
    if version != VERSION:
        raise DecryptionError(f"unknown encryption format version {version}")
    if not 0 < segment_size <= 64 * 1024 * 1024:
        raise DecryptionError("bad segment size in header")
    return segment_size, key_id, salt, prefix


def read_key_id(src: BinaryIO) -> int:
    """The data key id from an object's header (reads the header only)."""
    return parse_header(src.read(HEADER_SIZE))[1]


def plaintext_size(src: BinaryIO, cipher_size: int) -> int:
    """The plaintext length of an encrypted object of `cipher_size` bytes (reads the header
    only): each segment adds a tag, the last one may be short."""
    segment_size = parse_header(src.read(HEADER_SIZE))[0]
    body = cipher_size - HEADER_SIZE
    segments = max(1, -(-body // (segment_size + TAG_SIZE)))
    return body - segments * TAG_SIZE


def _read_full(src: BinaryIO, n: int) -> bytes:
    parts, remaining = [], n
    while remaining:
        chunk = src.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def encrypt_chunks(src: BinaryIO, *, data_key: bytes, key_id: int,
                   segment_size: int = SEGMENT_SIZE) -> Iterator[bytes]:
    """Yield the ciphertext of `src` (header first, then one chunk per segment)."""
    salt, prefix = os.urandom(16), os.urandom(7)
    header = _HEADER.pack(MAGIC, VERSION, segment_size, key_id, salt, prefix)
    aead = _object_key(data_key, header, salt)
    yield header
    counter = 0
    current = _read_full(src, segment_size)
    while True:
        following = _read_full(src, segment_size) if len(current) == segment_size else b""
        last = not following
        yield aead.encrypt(_nonce(prefix, counter, last), current, None)
        if last:
            return
        counter += 1
        current = following


def decrypt_chunks(src: BinaryIO, *, key_lookup: Callable[[int], bytes]) -> Iterator[bytes]:
    """Yield the plaintext of an encrypted object, one verified segment at a time.

    `key_lookup(key_id)` returns the data key named in the header. Raises DecryptionError
    on any tampering, truncation, trailing data or wrong key; a consumer must treat
    already-yielded plaintext as unverified until the iterator finishes."""
    header = _read_full(src, HEADER_SIZE)
    segment_size, key_id, salt, prefix = parse_header(header)
    aead = _object_key(key_lookup(key_id), header, salt)
    sealed = segment_size + TAG_SIZE
    counter = 0
    current = _read_full(src, sealed)
    while True:
        if len(current) < TAG_SIZE:
            raise DecryptionError("object truncated")
        following = _read_full(src, sealed) if len(current) == sealed else b""
        last = not following
        try:
            yield aead.decrypt(_nonce(prefix, counter, last), current, None)
        except InvalidTag:
            raise _unauthentic(counter) from None
        if last:
            return
        counter += 1
        current = following


class EncryptingReader:
    """A read()-able view of the ciphertext of `src`, for streaming uploads.

    Also hashes plaintext and ciphertext on the way through, so the caller can check
    the plaintext against the index and record the ciphertext's checksum."""

    def __init__(self, src: BinaryIO, *, data_key: bytes, key_id: int,
                 segment_size: int = SEGMENT_SIZE) -> None:
        self._src = _HashingReader(src)
        self._chunks = encrypt_chunks(self._src, data_key=data_key, key_id=key_id,
                                      segment_size=segment_size)
        self._buffer = b""
        self.cipher_sha256 = hashlib.sha256()
        self.size = 0

    @property
    def plain_sha256(self) -> str:
        return self._src.sha256.hexdigest()

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if n < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:n], self._buffer[n:]
        self.cipher_sha256.update(out)
        self.size += len(out)
        return out


class _HashingReader:
    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self.sha256.update(data)
        return data


class DecryptingReader(io.RawIOBase):
    """A seekable, read-only file object over the plaintext of an encrypted object on a
    seekable source (a tier-1 file), for readers that jump around (WADO frames, pydicom).

    Segments authenticate on their own (counter and last flag are in each nonce; the last
    segment is known from the source's size), so a read decrypts only the segments it
    touches, keeping the last one. Every byte returned has been authenticated; truncation
    at a segment boundary fails on the then-last segment. The reader closes `src` when it
    is closed."""

    # One segment kept: a viewer's request for one frame must stay well below the file's size
    # in memory (tests/archive/test_wado_memory.py); re-decrypting a segment costs ~0.5 ms.
    CACHE_SEGMENTS = 1

    def __init__(self, src: BinaryIO, *, key_lookup: Callable[[int], bytes]) -> None:
        super().__init__()
        self._src = src
        try:
            header = _read_full(src, HEADER_SIZE)
            self._segment_size, self.key_id, salt, self._prefix = parse_header(header)
            self._aead = _object_key(key_lookup(self.key_id), header, salt)
            body = src.seek(0, os.SEEK_END) - HEADER_SIZE
        except BaseException:
            src.close()
            raise
        sealed = self._segment_size + TAG_SIZE
        self._segments = max(1, -(-body // sealed))
        last_sealed = body - (self._segments - 1) * sealed
        if last_sealed < TAG_SIZE:
            src.close()
            raise DecryptionError("object truncated")
        self.size = (self._segments - 1) * self._segment_size + last_sealed - TAG_SIZE
        self._pos = 0
        self._cache: dict[int, bytes] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._pos + offset
        elif whence == os.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError("negative seek position")
        self._pos = position
        return position

    def _segment(self, index: int) -> bytes:
        plain = self._cache.get(index)
        if plain is not None:
            return plain
        while len(self._cache) >= self.CACHE_SEGMENTS:  # freed before the next is made
            self._cache.pop(next(iter(self._cache)))
        nonce, data = self._sealed(index)
        try:
            plain = self._aead.decrypt(nonce, data, None)
        except InvalidTag:
            raise _unauthentic(index) from None
        del data
        self._cache[index] = plain
        return plain

    def read(self, n: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read of a closed file")
        end = self.size if n is None or n < 0 else min(self.size, self._pos + n)
        parts = []
        while self._pos < end:
            index, start = divmod(self._pos, self._segment_size)
            plain = self._segment(index)
            take = min(len(plain) - start, end - self._pos)
            # A whole segment is handed out as it is, without a copy.
            parts.append(plain if start == 0 and take == len(plain) else plain[start:start + take])
            self._pos += take
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer) -> int:
        """Fill `buffer` from the current position. A whole segment that fits is decrypted
        straight into it (no plaintext copy: a series read this way into a response's send
        buffer costs a quarter less CPU); the rest is copied from the kept segment."""
        if self.closed:
            raise ValueError("read of a closed file")
        out = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(out) and self._pos < self.size:
            index, start = divmod(self._pos, self._segment_size)
            plain_length = min(self._segment_size, self.size - index * self._segment_size)
            if start == 0 and index not in self._cache and len(out) - filled >= plain_length:
                self._decrypt_into(index, out[filled:filled + plain_length])
                take = plain_length
            else:
                plain = self._segment(index)
                take = min(len(plain) - start, len(out) - filled)
                out[filled:filled + take] = memoryview(plain)[start:start + take]
            filled += take
            self._pos += take
        return filled

    def _sealed(self, index: int) -> tuple[bytes, bytes]:
        """Segment `index` as stored: (its nonce, its ciphertext and tag)."""
        sealed = self._segment_size + TAG_SIZE
        self._src.seek(HEADER_SIZE + index * sealed)
        return _nonce(self._prefix, index, index == self._segments - 1), _read_full(self._src, sealed)

    def _decrypt_into(self, index: int, target: memoryview) -> None:
        nonce, data = self._sealed(index)
        if len(data) != len(target) + TAG_SIZE:
            raise DecryptionError("object truncated")
        try:
            self._aead.decrypt_into(nonce, data, None, target)
        except InvalidTag:
            target[:] = bytes(len(target))  # whatever was decrypted is not to be trusted
            raise _unauthentic(index) from None

    def close(self) -> None:
        if not self.closed:
            self._cache.clear()
            self._src.close()
        super().close()
