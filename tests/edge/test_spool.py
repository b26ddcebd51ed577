"""The edge spool's own promises, without a network."""

import os
from pathlib import Path

import pytest

from edge import spool as spool_module
from edge.spool import Spool


def _entry(spool: Spool, tmp_path: Path, uid: str = "1.2.3"):
    plain = tmp_path / "received.dcm"
    plain.write_bytes(b"DICM" * 1000)
    return spool.put(plain, uid)


def test_sealed_files_read_back_and_hold_no_plaintext(tmp_path):
    spool = Spool(tmp_path / "spool", "token-1")
    entry = _entry(spool, tmp_path)
    assert b"DICM" not in entry.path.read_bytes()
    assert b"".join(spool.plain_chunks(entry)) == b"DICM" * 1000
    assert spool.plain_size(entry) == 4000
    assert Spool(tmp_path / "spool", "token-2").sealed_here(entry) is False  # another token, another key


def test_a_refusal_is_noted_before_the_file_leaves_the_queue(tmp_path, monkeypatch):
    """The migration counts a study done when its files are gone from the queue and not
    noted as refused: the note must exist before the file moves."""
    spool = Spool(tmp_path / "spool", "token")
    entry = _entry(spool, tmp_path)
    noted_first = []
    real_replace = os.replace

    def replace(src, dst):
        noted_first.append(Path(f"{dst}.json").exists())
        return real_replace(src, dst)

    monkeypatch.setattr(spool_module.os, "replace", replace)
    spool.reject(entry, "refused by the cloud", 0x0111)
    assert noted_first == [True]
    assert [note["code"] for note in spool.rejected_entries()] == [0x0111]


def test_the_salt_is_made_once(tmp_path):
    first = Spool(tmp_path / "spool", "token")
    salt = (tmp_path / "spool" / "salt").read_bytes()
    second = Spool(tmp_path / "spool", "token")
    assert (tmp_path / "spool" / "salt").read_bytes() == salt and first.key == second.key
    assert [p.name for p in (tmp_path / "spool").iterdir() if p.name.startswith(".salt")] == []


def test_a_refusal_that_cannot_move_its_file_leaves_no_note(tmp_path, monkeypatch):
    """A note beside a file still queued would have the migration count it refused."""
    spool = Spool(tmp_path / "spool", "token")
    entry = _entry(spool, tmp_path)

    def replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(spool_module.os, "replace", replace)
    with pytest.raises(OSError):
        spool.reject(entry, "refused by the cloud", 0x0111)
    assert spool.rejected_entries() == [] and entry.path.exists()
