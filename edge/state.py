"""What the edge gateway reports about itself, kept in the spool's state.json (written
atomically) so `edge_gateway status` can read it whether the gateway runs or not. No PHI:
counts, times and reasons only."""

import json
import os
import threading
import time
from pathlib import Path

from edge.spool import Spool


class EdgeState:
    def __init__(self, spool: Spool):
        self.path = spool.root / "state.json"
        self._lock = threading.Lock()
        self.data = read_state(self.path)
        self.data.update({"started_at": time.time(), "pid": os.getpid(), "other_key": 0})

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)

    def _change(self, **changes) -> None:
        with self._lock:
            self.data.update(changes)
            self._save()

    def received(self) -> None:
        with self._lock:
            self.data["received"] = self.data.get("received", 0) + 1
            self.data["last_received_at"] = time.time()
            self._save()

    def sent(self, n: int) -> None:
        if n:
            with self._lock:
                self.data["sent"] = self.data.get("sent", 0) + n
                self.data.update(last_sent_at=time.time(), last_error="", last_error_at=None)
                self._save()

    def failed(self, error: str) -> None:
        self._change(last_error=error, last_error_at=time.time())

    def rejected_one(self) -> None:
        with self._lock:
            self.data["rejected"] = self.data.get("rejected", 0) + 1
            self._save()

    def note_other_key(self) -> None:
        self.data["other_key"] = self.data.get("other_key", 0) + 1

    def note_migration(self, **progress) -> None:
        with self._lock:
            self.data["migration"] = {**self.data.get("migration", {}), **progress}
            self._save()

    def stopped(self) -> None:
        self._change(pid=None)


def read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def snapshot(spool_root: Path) -> dict:
    """The queue as it stands: for `edge_gateway status` and the status page."""
    root = Path(spool_root)
    queued = [p for p in (root / "queue").glob("*") if not p.name.startswith(".")] if (root / "queue").is_dir() else []
    sizes, oldest = 0, None
    for path in queued:
        try:
            sizes += path.stat().st_size
        except FileNotFoundError:
            continue
        at = int(path.name.split("-", 1)[0]) / 1e9
        oldest = at if oldest is None else min(oldest, at)
    state = read_state(root / "state.json")
    rejected = len(list((root / "rejected").glob("*.json"))) if (root / "rejected").is_dir() else 0
    return {
        "queued": len(queued), "bytes": sizes, "oldest_queued_at": oldest,
        "oldest_age_seconds": round(time.time() - oldest, 1) if oldest else None,
        "rejected": rejected, "running": _alive(state.get("pid")),
        **{k: state.get(k) for k in ("received", "sent", "last_received_at", "last_sent_at", "last_error",
                                     "last_error_at", "started_at", "migration")},
    }


def _alive(pid) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return True
