"""Thread pools for I/O that waits on the network, one per name and per process: a pool
does not survive a fork (gunicorn and Celery fork their workers), so a process that finds
one made by its parent makes its own."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_pools: dict[str, tuple[int, ThreadPoolExecutor]] = {}


def thread_pool(name: str, size: int) -> ThreadPoolExecutor:
    with _lock:
        made = _pools.get(name)
        if made is None or made[0] != os.getpid():
            made = _pools[name] = (os.getpid(), ThreadPoolExecutor(size, thread_name_prefix=name))
        return made[1]
