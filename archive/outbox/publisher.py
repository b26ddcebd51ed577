"""Gathering committed outbox rows into fewer messages.

A C-STORE association commits one instance per transaction, and so does a sender that
posts one instance per STOW-RS request: one message each made the worker pay a task's and
a batch's fixed costs per instance (about 14 ms of worker CPU per CT instance, against 7
in batches). Rows committed within OUTBOX_PUBLISH_WINDOW_MS of each other go to the workers
in one message instead, or at once when OUTBOX_PUBLISH_BATCH have gathered.

Nothing is lost by waiting: the rows are committed before they are gathered, and rows a
dead process never published are re-driven by the sweeper."""

import atexit
import threading

from celery import current_app
from django.conf import settings

# Rows that go to the workers in one message at most, whatever the window.
OUTBOX_PUBLISH_BATCH = 64


def publish_in_batches(publish, ids: list[int]) -> None:
    """`publish` the rows in messages of at most OUTBOX_PUBLISH_BATCH."""
    for start in range(0, len(ids), OUTBOX_PUBLISH_BATCH):
        publish(ids[start:start + OUTBOX_PUBLISH_BATCH])


class Publisher:
    def __init__(self, publish) -> None:
        self._publish = publish
        self._lock = threading.Lock()
        self._ids: list[int] = []
        self._timer: threading.Timer | None = None

    def add(self, ids: list[int]) -> None:
        """Publish `ids` now, or with the rows committed in the same short window."""
        window = settings.OUTBOX_PUBLISH_WINDOW_MS / 1000
        if window <= 0 or current_app.conf.task_always_eager:
            self._publish(ids)
            return
        with self._lock:
            self._ids.extend(ids)
            full = len(self._ids) >= OUTBOX_PUBLISH_BATCH
            if full:
                ids, self._ids = self._ids, []
            elif self._timer is None:
                self._timer = threading.Timer(window, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if full:
            publish_in_batches(self._publish, ids)

    def flush(self) -> None:
        """Publish whatever has gathered (the window's end, and the process's)."""
        with self._lock:
            ids, self._ids = self._ids, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        publish_in_batches(self._publish, ids)


def publisher_for(publish) -> Publisher:
    publisher = Publisher(publish)
    atexit.register(publisher.flush)
    return publisher
