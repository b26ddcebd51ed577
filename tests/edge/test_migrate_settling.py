"""The migration's count of a study as done or failed, against the uploader working at the
same moment (no network: the spool and the migration's bookkeeping only)."""

from pathlib import Path

from edge.migrate import Migration, Study
from edge.spool import Spool
from edge.state import EdgeState


def test_a_refusal_just_after_the_notes_were_read_is_not_counted_done(tmp_path: Path, monkeypatch):
    """The uploader may refuse a study's last file between the migration's read of the
    refusal notes and its look at the queue: the file is gone, as if sent. Such a study
    must be counted failed (on the next look), never done."""
    spool = Spool(tmp_path / "spool", "token")
    plain = tmp_path / "received.dcm"
    plain.write_bytes(b"DICM" * 100)
    entry = spool.put(plain, "1.2.3.4")
    migration = Migration(spool, EdgeState(spool), source="OLDPACS@127.0.0.1:4242", cloud_url="http://cloud",
                          token="token", calling_ae="EDGE", write=lambda line: None)
    study = Study("1.2.3", 1)
    refused_once = []

    def uploader_refuses() -> None:  # once, right after the migration's first look
        if not refused_once:
            refused_once.append(True)
            spool.reject(entry, "refused by the cloud", 0x0111)

    read_notes, look_at_queue = spool.rejected_entries, migration._settled

    def notes():
        seen = read_notes()
        uploader_refuses()
        return seen

    def settled(*args):
        seen = look_at_queue(*args)
        uploader_refuses()
        return seen

    monkeypatch.setattr(spool, "rejected_entries", notes)
    monkeypatch.setattr(migration, "_settled", settled)
    waiting = [(study, [entry.path.name])]
    for _ in range(2):
        waiting = migration._finish_settled(waiting)
    assert waiting == []
    assert migration.record.get(study)["state"] == "failed"
    assert migration.progress.done_studies == 0 and list(migration.progress.failed) == [study.uid]
