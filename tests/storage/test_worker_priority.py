"""The Celery worker runs below the web server's priority (WORKER_NICE, cloudpacs/celery.py):
its archive work yields the CPU to requests people and modalities wait for."""

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def _nice_values(pid: int) -> set[int]:
    """The niceness of every thread of `pid` and of its children's threads."""
    values, pids = set(), [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        pids.append(int(child))
    for each in pids:
        for task in Path(f"/proc/{each}/task").iterdir():
            # Field 19 of stat, counted after the command name, which may hold spaces.
            values.add(int((task / "stat").read_text().rsplit(")", 1)[1].split()[16]))
    return values


@pytest.mark.parametrize("nice", [7, 0])
def test_the_worker_and_its_pool_run_at_worker_nice(start_worker, nice):
    ours = os.nice(0)
    worker = start_worker(WORKER_NICE=str(nice))
    assert _nice_values(worker.process.pid) == {min(19, ours + nice)}
