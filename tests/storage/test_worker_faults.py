"""A real Celery worker on Redis archives to two real SeaweedFS regions, and whatever
fails in between (a killed worker, a lost message, a region down), every acknowledged
instance ends up verified in both regions."""

import pytest

from archive.models import Instance
from archive.outbox.models import Outbox
from archive.outbox.services import outbox_publish_gathered, outbox_sweep
from archive.storage.integrity import copy_check
from archive.storage.models import InstanceCopy
from archive.storage.selectors import storage_status
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import wait_for

pytestmark = pytest.mark.worker


def ingest(tenant, n, rows=64):
    results = [ingest_bytes(tenant, to_bytes(ds)) for ds in make_ct_series(n, rows, rows)]
    assert all(r.ok for r in results)
    return [r.instance for r in results]


def all_verified(tenant, n, *, sweep=False):
    if sweep:  # what celery beat does every minute, here on every poll
        outbox_sweep()
    status = storage_status(tenant=tenant)
    outbox_open = Outbox.objects.for_tenant(tenant).filter(kind="archive").filter(done_at=None).exists()
    return ((status["instances"], status["primary_verified"], status["secondary_verified"]) == (n, n, n)
            and not outbox_open)


def describe(tenant):
    """What the database says, for a timeout's message."""
    return (f"status={storage_status(tenant=tenant)} copies="
            f"{list(InstanceCopy.objects.for_tenant(tenant).values_list('instance_id', 'region', 'state', 'attempts', 'last_error'))} "
            f"outbox={list(Outbox.objects.for_tenant(tenant).values_list('pk', 'done_at', 'next_attempt_at', 'attempts', 'last_error'))}")


def assert_everything_durable(tenant, n):
    assert storage_status(tenant=tenant)["oldest_unreplicated_seconds"] is None
    assert not Outbox.objects.for_tenant(tenant).filter(kind="archive").filter(done_at=None).exists()
    for instance in Instance.objects.for_tenant(tenant):
        for region in ("primary", "secondary"):
            assert copy_check(instance, region).ok, (instance.pk, region)


@pytest.fixture
def quick_sweeper(settings):
    settings.STORAGE_SWEEP_IDLE_SECONDS = 1


def test_worker_archives_to_both_regions(tenant, start_worker):
    start_worker()
    ingest(tenant, 4)
    wait_for(lambda: all_verified(tenant, 4), timeout=60, what="both regions verified")
    assert_everything_durable(tenant, 4)


def test_lost_broker_message_is_redriven_by_the_sweeper(tenant, start_worker, redis_broker, quick_sweeper):
    app, _ = redis_broker
    ingest(tenant, 3)  # three commits, queued on Redis once the window ends; no worker yet
    outbox_publish_gathered()
    with app.connection_for_write() as conn:
        lost = conn.default_channel.queue_purge(app.conf.task_default_queue)
    assert lost == 1  # the three commits' rows went in one message
    start_worker()
    assert storage_status(tenant=tenant)["primary_verified"] == 0
    wait_for(lambda: all_verified(tenant, 3, sweep=True), timeout=60, interval=0.5,
             what="the sweeper to re-drive the lost messages")
    assert_everything_durable(tenant, 3)


def test_worker_killed_mid_upload(tenant, start_worker, quick_sweeper, settings):
    # Larger instances, one message each (a batch records its copies at its end) and one
    # process, so the kill lands while copies are in flight.
    settings.OUTBOX_PUBLISH_WINDOW_MS = 0
    worker = start_worker(concurrency=1)
    ingest(tenant, 8, rows=384)
    wait_for(lambda: InstanceCopy.objects.for_tenant(tenant).filter(attempts__gt=0).exists(),
             timeout=30, interval=0.02, what="the first upload to start")
    worker.kill()
    assert not all_verified(tenant, 8), "the worker finished before it was killed"
    start_worker()
    try:
        wait_for(lambda: all_verified(tenant, 8, sweep=True), timeout=60, interval=0.5,
                 what="a new worker and the sweeper to finish")
    except TimeoutError:
        raise AssertionError(describe(tenant)) from None
    assert_everything_durable(tenant, 8)


def test_secondary_down_for_a_while(tenant, start_worker, seaweed, quick_sweeper):
    secondary = seaweed["secondary"]
    secondary.stop()
    try:
        start_worker()
        ingest(tenant, 3)
        wait_for(lambda: storage_status(tenant=tenant)["primary_verified"] == 3
                 and InstanceCopy.objects.for_tenant(tenant).filter(region="secondary")
                 .exclude(last_error="").count() == 3,
                 timeout=60, interval=0.2, what="the primary verified and the secondary failing")
        assert storage_status(tenant=tenant)["secondary_verified"] == 0
        assert storage_status(tenant=tenant)["oldest_unreplicated_seconds"] > 0
    finally:
        secondary.start()
        secondary.wait_ready()
    wait_for(lambda: all_verified(tenant, 3, sweep=True), timeout=90, interval=0.5,
             what="replication to catch up after the outage")
    assert_everything_durable(tenant, 3)
