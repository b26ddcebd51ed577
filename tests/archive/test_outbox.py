"""The transactional outbox dispatches by kind: one row per piece of work, the handler
registered for its kind does it, a failing row is retried alone, and one sweeper
re-drives rows of every kind."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from archive.outbox import registry, tasks
from archive.outbox.models import Outbox
from archive.outbox.services import outbox_add, outbox_advance, outbox_sweep
from archive.storage.pipeline import ARCHIVE
from cloudpacs.celery import app

KIND = "test.notify"


@pytest.fixture
def handled(monkeypatch):
    """A kind of work whose handler records the subjects it saw; subjects listed in
    `fail_once` fail on their first attempt."""
    seen: list[int] = []
    fail_once: set[int] = set()

    def handler(row):
        seen.append(row.subject_id)
        if row.subject_id in fail_once:
            fail_once.discard(row.subject_id)
            raise RuntimeError("peer unreachable")
        return True

    monkeypatch.setitem(registry._handlers, KIND, handler)
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True  # tasks run here, in the test's transaction
    yield seen, fail_once
    app.conf.task_always_eager = eager


def test_archive_work_is_registered_by_the_storage_app():
    assert ARCHIVE in registry.kinds()


def test_rows_are_written_with_the_change_and_published_once_it_commits(tenant, handled,
                                                                         django_capture_on_commit_callbacks):
    seen, _ = handled
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            rows = outbox_add(tenant=tenant, kind=KIND, subjects=[7, 8], payload={"why": "test"})
            assert seen == []  # nothing runs before the change is committed
    assert len(callbacks) == 1  # one message for the rows of one transaction
    assert seen == [7, 8]
    assert all(row.done_at for row in Outbox.objects.for_tenant(tenant).filter(pk__in=[r.pk for r in rows]))


def test_a_rolled_back_change_leaves_no_work(tenant, handled):
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox_add(tenant=tenant, kind=KIND, subjects=[1])
        raise RuntimeError("the change failed")
    assert not Outbox.objects.for_tenant(tenant).exists()


def test_an_unknown_kind_is_refused_before_anything_is_written(tenant):
    with pytest.raises(registry.UnknownKind):
        outbox_add(tenant=tenant, kind="no.such.kind", subjects=[1])
    assert not Outbox.objects.for_tenant(tenant).exists()


def test_a_failing_row_is_retried_alone(tenant, handled):
    seen, fail_once = handled
    rows = Outbox.unscoped.bulk_create([Outbox(tenant=tenant, kind=KIND, subject_id=n) for n in (1, 2, 3)])
    fail_once.add(2)
    tasks.process([row.pk for row in rows])
    # 2 failed, was retried by itself and then done; 1 and 3 ran once each.
    assert sorted(seen) == [1, 2, 2, 3]
    assert all(row.done_at for row in Outbox.objects.for_tenant(tenant))


def test_a_failure_is_recorded_on_the_row_and_a_done_row_is_left_alone(tenant, handled):
    seen, fail_once = handled
    row = Outbox.unscoped.create(tenant=tenant, kind=KIND, subject_id=5)
    fail_once.add(5)
    with pytest.raises(RuntimeError):
        outbox_advance(row.pk)
    row.refresh_from_db()
    assert row.done_at is None and "peer unreachable" in row.last_error
    assert outbox_advance(row.pk) is True
    assert outbox_advance(row.pk) is None and seen == [5, 5]


def test_the_sweeper_redrives_idle_rows_of_every_kind(tenant, handled, settings):
    seen, _ = handled
    idle = timezone.now() - timedelta(seconds=settings.STORAGE_SWEEP_IDLE_SECONDS + 1)
    Outbox.unscoped.create(tenant=tenant, kind=KIND, subject_id=9, next_attempt_at=idle)
    Outbox.unscoped.create(tenant=tenant, kind=KIND, subject_id=10)  # touched just now: not idle
    assert outbox_sweep() == 1
    assert seen == [9]


def test_a_process_that_only_set_django_up_can_publish():
    """The web server and the gateway never import the task module themselves: publishing
    must work in a fresh process all the same (it did not, and rows waited for the sweeper)."""
    import os
    import subprocess
    import sys

    code = ("import django; django.setup()\n"
            "from celery import current_app\n"
            "from archive.outbox.services import PROCESS_TASK\n"
            "print(PROCESS_TASK in current_app.tasks)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "cloudpacs.settings"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"


class _Recorder:
    def __init__(self):
        self.messages: list[list[int]] = []

    def __call__(self, ids):
        self.messages.append(list(ids))


def test_rows_committed_in_one_window_go_to_the_workers_in_one_message(settings):
    """A C-STORE association commits one instance per transaction: one message each made
    the worker pay a message's fixed costs per instance."""
    from archive.outbox.publisher import Publisher
    from tests.servers import wait_for

    settings.OUTBOX_PUBLISH_WINDOW_MS = 100
    sent = _Recorder()
    publisher = Publisher(sent)
    publisher.add([1])
    publisher.add([2, 3])
    assert sent.messages == []  # gathered, not yet sent
    wait_for(lambda: sent.messages, timeout=5, what="the window's message")
    assert sent.messages == [[1, 2, 3]]


def test_a_full_batch_goes_at_once_and_a_window_of_zero_waits_for_nothing(settings):
    from archive.outbox.publisher import OUTBOX_PUBLISH_BATCH, Publisher

    settings.OUTBOX_PUBLISH_WINDOW_MS = 60_000
    sent = _Recorder()
    publisher = Publisher(sent)
    publisher.add(list(range(OUTBOX_PUBLISH_BATCH)))
    assert sent.messages == [list(range(OUTBOX_PUBLISH_BATCH))]
    publisher.add([1000])  # gathered; then one commit of more rows than a message holds
    publisher.add(list(range(2000, 2000 + OUTBOX_PUBLISH_BATCH)))
    assert [len(m) for m in sent.messages[1:]] == [OUTBOX_PUBLISH_BATCH, 1]
    settings.OUTBOX_PUBLISH_WINDOW_MS = 0
    publisher.add([7])
    assert sent.messages[-1] == [7]


def test_committed_rows_reach_the_publisher_once_the_transaction_commits(tenant, settings, monkeypatch,
                                                                          django_capture_on_commit_callbacks):
    from archive.outbox import services
    from archive.outbox.publisher import Publisher
    from tests.servers import wait_for

    settings.OUTBOX_PUBLISH_WINDOW_MS = 50
    sent = _Recorder()
    monkeypatch.setattr(services, "_publisher", Publisher(sent))
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        first = outbox_add(tenant=tenant, kind=ARCHIVE, subjects=[101])
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        second = outbox_add(tenant=tenant, kind=ARCHIVE, subjects=[102])
    wait_for(lambda: sent.messages, timeout=5, what="the window's message")
    assert sent.messages == [[first[0].pk, second[0].pk]]


def test_rows_gathered_when_the_process_ends_are_sent_then():
    import os
    import subprocess
    import sys

    code = ("import django; django.setup()\n"
            "from archive.outbox.publisher import publisher_for\n"
            "publisher_for(lambda ids: print('sent', ids)).add([5, 6])\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "cloudpacs.settings", "OUTBOX_PUBLISH_WINDOW_MS": "60000",
           "CELERY_TASK_ALWAYS_EAGER": "0"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          check=True)
    assert "sent [5, 6]" in done.stdout
