"""Durable-storage fixtures: two SeaweedFS servers as the two regions (one per session),
a test master key, and real Celery workers on Redis."""

import base64
import os
import uuid

import pytest

from tests.servers import CeleryWorker, SeaweedServer, WebServer, database_url

TEST_MASTER_KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(autouse=True)
def master_key(settings):
    from cloudpacs.objectstore.master_key import master_key as cached
    from cloudpacs.objectstore.master_key import next_master_key

    settings.CLOUDPACS_MASTER_KEY = TEST_MASTER_KEY
    cached.cache_clear()
    next_master_key.cache_clear()
    yield TEST_MASTER_KEY
    cached.cache_clear()
    next_master_key.cache_clear()


@pytest.fixture(autouse=True)
def tier1(settings, tmp_path):
    settings.TIER1_PATH = str(tmp_path / "tier1")
    settings.INGEST_TMP_DIR = str(tmp_path / "tmp")
    return tmp_path / "tier1"


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """Two SeaweedFS servers on 127.0.0.1: primary and secondary region."""
    servers = {region: SeaweedServer(tmp_path_factory.mktemp(f"weed-{region}"), bucket="")
               for region in ("primary", "secondary")}
    try:
        for server in servers.values():
            server.start()
        for server in servers.values():
            # One bucket per region for the session (each bucket is a SeaweedFS collection
            # with its own volumes); object keys are unique, so tests do not collide.
            server.bucket = f"{server.data_dir.name[5:8]}-{uuid.uuid4().hex[:12]}"
            for attempt in range(3):
                try:
                    server.wait_ready()
                    break
                except RuntimeError:  # weed could not bind a port another process took meanwhile
                    if attempt == 2:
                        raise
                    server.process = None  # it exited
                    server.ports_renew()
                    server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def s3_regions(seaweed, settings, monkeypatch):
    """Point both regions at SeaweedFS; returns the env a worker needs."""
    from cloudpacs.settings import _region_storage

    env = {}
    for region, server in seaweed.items():
        if server.process is None or server.process.poll() is not None:
            server.start()
            server.wait_ready()
        env.update(server.env(region))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Assigning STORAGES makes Django drop its cached storage instances.
    settings.STORAGES = {**settings.STORAGES, "primary": _region_storage("primary"),
                         "secondary": _region_storage("secondary")}
    return env


@pytest.fixture
def redis_broker():
    """Send tasks through Redis (the filesystem broker of the embedded mode cannot be shared
    with a worker started here reliably); returns the app and the test queue."""
    from cloudpacs.celery import app

    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url or url.startswith("filesystem"):
        url = "redis://127.0.0.1:6379/9"
    old = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_default_queue)
    # A queue of our own: a worker started here must never take another session's
    # messages (whose ids name rows in another database), nor the other way round.
    queue = f"storage-test-{uuid.uuid4().hex[:12]}"
    _configure(app, url, {}, queue)
    yield app, url
    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)
    _configure(app, *old)


def _configure(app, url, transport_options, queue):
    app.conf.broker_url, app.conf.broker_transport_options = url, transport_options
    app.conf.task_default_queue = queue
    # Drop the connection pool and the routing tables built from the old settings.
    app._pool = None
    app.__dict__.pop("amqp", None)


@pytest.fixture
def start_worker(transactional_db, s3_regions, redis_broker, settings, tmp_path):
    """`start_worker()` starts a real Celery worker on this test's database, regions and
    queue (`start_worker(NAME=value)` adds to its environment); every worker started is
    stopped at the end of the test."""
    from django.db import connection

    app, broker_url = redis_broker
    workers = []
    env = {
        **s3_regions,
        "DATABASE_URL": database_url(connection.settings_dict),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_DEFAULT_QUEUE": app.conf.task_default_queue,
        "CLOUDPACS_MASTER_KEY": TEST_MASTER_KEY,
        "CLOUDPACS_VAR_DIR": str(settings.VAR_DIR),
        "TIER1_PATH": settings.TIER1_PATH,
        "INGEST_TMP_DIR": settings.INGEST_TMP_DIR,
        "STORAGE_TASK_RETRY_BACKOFF_MAX": "2",
        "STORAGE_TASK_MAX_RETRIES": "3",
        "DJANGO_SETTINGS_MODULE": "cloudpacs.settings",
    }

    def start(concurrency: int = 2, **extra_env: str) -> CeleryWorker:
        worker = CeleryWorker({**env, **extra_env}, app.conf.task_default_queue, tmp_path, concurrency)
        workers.append(worker)
        worker.start()
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def gateway(tenant):
    """The DICOM gateway in this process on a free port (its port), MODALITY1 let in."""
    import tempfile

    from archive.gateway.models import DicomPeer
    from archive.gateway.server import start_gateway

    DicomPeer.objects.for_tenant(tenant).create(ae_title="MODALITY1")
    saved = tempfile.tempdir
    server = start_gateway("127.0.0.1", 0, block=False)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    tempfile.tempdir = saved  # build_ae points it at the gateway's spool folder


@pytest.fixture
def web(settings, tmp_path):
    """The web server (one worker) on this test's database, spool and tier 1."""
    from django.db import connection

    settings.UPLOAD_DIR = str(tmp_path / "uploads")
    server = WebServer({"DATABASE_URL": database_url(connection.settings_dict),
                        "CLOUDPACS_MASTER_KEY": TEST_MASTER_KEY, "CLOUDPACS_VAR_DIR": str(tmp_path / "var"),
                        "TIER1_PATH": settings.TIER1_PATH, "INGEST_TMP_DIR": settings.INGEST_TMP_DIR,
                        "UPLOAD_DIR": settings.UPLOAD_DIR}, tmp_path, workers=1)
    server.start()
    yield server
    server.stop()
