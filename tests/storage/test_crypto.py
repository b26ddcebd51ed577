import io
import os

import pytest

from cloudpacs.objectstore import crypto

KEY, OTHER_KEY = os.urandom(32), os.urandom(32)
SEG = 1024  # small segments so a few KB exercise the multi-segment paths


def encrypt(data: bytes, key: bytes = KEY, key_id: int = 7) -> bytes:
    return b"".join(crypto.encrypt_chunks(io.BytesIO(data), data_key=key, key_id=key_id, segment_size=SEG))


def decrypt(blob: bytes, key: bytes = KEY) -> bytes:
    return b"".join(crypto.decrypt_chunks(io.BytesIO(blob), key_lookup=lambda kid: key))


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 5 * SEG + 17])
def test_round_trip(size):
    data = os.urandom(size)
    blob = encrypt(data)
    assert decrypt(blob) == data
    assert crypto.read_key_id(io.BytesIO(blob)) == 7
    expected_segments = max(1, -(-size // SEG))
    assert len(blob) == crypto.HEADER_SIZE + size + crypto.TAG_SIZE * expected_segments


def test_same_plaintext_encrypts_differently():
    assert encrypt(b"x" * 100) != encrypt(b"x" * 100)


def test_default_segment_size_is_one_mebibyte():
    data = os.urandom(crypto.SEGMENT_SIZE + 5)
    blob = b"".join(crypto.encrypt_chunks(io.BytesIO(data), data_key=KEY, key_id=1))
    assert len(blob) == crypto.HEADER_SIZE + len(data) + 2 * crypto.TAG_SIZE
    assert decrypt(blob) == data


@pytest.mark.parametrize("position", [0, 5, crypto.HEADER_SIZE - 1, crypto.HEADER_SIZE + 3,
                                      crypto.HEADER_SIZE + SEG + 20, -1])
def test_flipped_byte_is_detected(position):
    blob = bytearray(encrypt(os.urandom(3 * SEG + 10)))
    blob[position] ^= 0x01
    with pytest.raises(crypto.DecryptionError):
        decrypt(bytes(blob))


@pytest.mark.parametrize("cut", [1, crypto.TAG_SIZE, SEG + crypto.TAG_SIZE, 10 + crypto.TAG_SIZE])
def test_truncation_is_detected(cut):
    blob = encrypt(os.urandom(3 * SEG + 10))
    with pytest.raises(crypto.DecryptionError):
        decrypt(blob[:-cut])


def test_truncation_at_a_segment_boundary_is_detected():
    blob = encrypt(os.urandom(3 * SEG))
    sealed = SEG + crypto.TAG_SIZE
    # Drop whole segments: the new last one was not sealed as last.
    for keep in (2, 1):
        with pytest.raises(crypto.DecryptionError):
            decrypt(blob[: crypto.HEADER_SIZE + keep * sealed])


def test_reordered_segments_are_detected():
    blob = encrypt(os.urandom(3 * SEG + 10))
    h, sealed = crypto.HEADER_SIZE, SEG + crypto.TAG_SIZE
    swapped = blob[:h] + blob[h + sealed: h + 2 * sealed] + blob[h: h + sealed] + blob[h + 2 * sealed:]
    with pytest.raises(crypto.DecryptionError):
        decrypt(swapped)


def test_trailing_data_is_detected():
    with pytest.raises(crypto.DecryptionError):
        decrypt(encrypt(os.urandom(100)) + b"extra")


def test_wrong_key_fails():
    with pytest.raises(crypto.DecryptionError):
        decrypt(encrypt(b"secret pixels"), key=OTHER_KEY)


def test_changed_key_id_in_header_fails_even_with_right_key():
    blob = bytearray(encrypt(b"secret pixels", key_id=7))
    blob[9:17] = (8).to_bytes(8, "big")  # key id field
    with pytest.raises(crypto.DecryptionError):
        decrypt(bytes(blob))


def test_not_our_format():
    with pytest.raises(crypto.DecryptionError, match="not a CloudPACS"):
        decrypt(b"DICM" + b"\0" * 100)


def test_encrypting_reader_streams_and_hashes():
    import hashlib

    data = os.urandom(4 * SEG + 3)
    reader = crypto.EncryptingReader(io.BytesIO(data), data_key=KEY, key_id=3, segment_size=SEG)
    parts = []
    while chunk := reader.read(333):
        parts.append(chunk)
    blob = b"".join(parts)
    assert max(len(p) for p in parts) <= 333
    assert decrypt(blob) == data
    assert reader.plain_sha256 == hashlib.sha256(data).hexdigest()
    assert reader.cipher_sha256.hexdigest() == hashlib.sha256(blob).hexdigest()
    assert reader.size == len(blob)


class _Zeros:
    """A 64 MiB source that never exists in memory as a whole."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def test_memory_stays_bounded_by_the_segment_size():
    import tracemalloc

    size = 64 * 1024 * 1024
    tracemalloc.start()
    try:
        reader = crypto.EncryptingReader(_Zeros(size), data_key=KEY, key_id=1)
        total = 0
        plain = crypto.decrypt_chunks(reader, key_lookup=lambda kid: KEY)
        for chunk in plain:
            total += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == size
    assert peak < 8 * crypto.SEGMENT_SIZE, f"peak {peak / 2**20:.1f} MiB"
