"""CPU time and memory of a server's whole process tree, read from /proc.

A server is more than the process the bench started: gunicorn forks its workers, each
worker starts a STOW-RS parse process through a fork server, Celery forks beat. What a
server costs is the sum over every descendant of the processes it was started as."""

import os
import threading
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")

# Fields of /proc/<pid>/stat counted after the command name, which may hold spaces and
# parentheses and is therefore cut at its last ")": state is field 0 here, ppid field 1.
PPID, UTIME, STIME, CUTIME, CSTIME, RSS_PAGES = 1, 11, 12, 13, 14, 21


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None  # the process ended between listing and reading


def _all_stats() -> dict[int, list[str]]:
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))):
            stats[int(entry)] = fields
    return stats


def _descendants(root: int, stats: dict[int, list[str]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[PPID]), []).append(pid)
    tree, todo = [], [root] if root in stats else []
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _cpu_seconds(fields: list[str]) -> float:
    """The process's own CPU time plus that of its children it has already reaped (a
    STOW-RS parse process that ended is counted in its parent's cutime and cstime)."""
    return sum(int(fields[i]) for i in (UTIME, STIME, CUTIME, CSTIME)) / CLOCK_TICKS


class ProcessTree:
    """The processes of one server, by role (`{"web": pid, "worker": pid, ...}`)."""

    def __init__(self, roots: dict[str, int]):
        self.roots = roots

    def cpu_seconds(self) -> dict[str, float]:
        """CPU-seconds used so far by each role's whole tree."""
        stats = _all_stats()
        return {role: sum(_cpu_seconds(stats[pid]) for pid in _descendants(root, stats))
                for role, root in self.roots.items()}

    def rss_bytes(self) -> int:
        """Resident memory summed over every process of every role. Pages that forked
        processes share are counted once per process, as `ps` shows them."""
        stats = _all_stats()
        return sum(int(stats[pid][RSS_PAGES]) * PAGE_BYTES
                   for root in self.roots.values() for pid in _descendants(root, stats))

    def pss_bytes(self) -> int:
        """Proportional memory summed over the tree: each shared page divided among the
        processes that share it, so the sum counts it once. Costs about 20 ms a call."""
        total = 0
        for pids in self.pids().values():
            for pid in pids:
                try:
                    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                except (FileNotFoundError, ProcessLookupError):
                    continue
                total += sum(int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:"))
        return total

    def pids(self) -> dict[str, list[int]]:
        stats = _all_stats()
        return {role: _descendants(root, stats) for role, root in self.roots.items()}


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {role: after[role] - before[role] for role in before}


class PeakMemory:
    """Samples a tree's summed RSS every `interval` seconds in a thread while in use, and
    its summed PSS whenever the RSS has climbed 2% above where PSS was last read (reading
    PSS costs ten times more, too much to do every time on two cores):

        with PeakMemory(tree) as memory:
            ...
        memory.peak_mb, memory.peak_pss_mb
    """

    def __init__(self, tree: ProcessTree, interval: float = 0.2):
        self.tree, self.interval = tree, interval
        self.peak_bytes = self.peak_pss_bytes = 0
        self._pss_read_at_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample_once(self) -> None:
        rss = self.tree.rss_bytes()
        self.peak_bytes = max(self.peak_bytes, rss)
        if rss > self._pss_read_at_rss * 1.02:
            self._pss_read_at_rss = rss
            self.peak_pss_bytes = max(self.peak_pss_bytes, self.tree.pss_bytes())

    def _sample(self) -> None:
        while True:
            self._sample_once()
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample_once()

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 1e6

    @property
    def peak_pss_mb(self) -> float:
        return self.peak_pss_bytes / 1e6


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until none of `pids` exists any more; returns those still there."""
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if _stat(pid) and _stat(pid)[0] != "Z"]
    return alive
