"""Bad storage: an endpoint that accepts and never answers. A clear error on the copy, nothing
lost, and the copy completes once the region answers again. (A missing bucket cannot be
shown against SeaweedFS: it creates buckets on first write.)"""

import socket
import threading
import time

from botocore.config import Config

from archive.outbox.models import Outbox
from archive.storage import pipeline
from archive.storage.models import InstanceCopy
from archive.storage.tier1 import tier1_path
from tests.storage.test_pipeline import ingest


def _primary_options(settings, **options):
    current = settings.STORAGES["primary"]
    settings.STORAGES = {**settings.STORAGES, "primary": {**current, "OPTIONS": {**current["OPTIONS"], **options}}}


def _silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held = []

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return listener, held


def test_hanging_endpoint_times_out_instead_of_blocking(tenant, s3_regions, seaweed, settings):
    (instance,) = ingest(tenant, 1)
    row = Outbox.objects.for_tenant(tenant).filter(kind="archive").get()
    listener, held = _silent_server()
    try:
        _primary_options(settings, endpoint_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
                         client_config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1}))
        started = time.monotonic()
        try:
            pipeline.outbox_drive_inline(row.pk)
        except Exception:  # noqa: BLE001
            pass
        assert time.monotonic() - started < 30
        copy = InstanceCopy.objects.for_tenant(tenant).get(region="primary")
        assert copy.state == "failed" and "timeout" in copy.last_error.lower()
        assert tier1_path(instance.storage_key).exists()
    finally:
        listener.close()
        for conn in held:
            conn.close()
    _primary_options(settings, endpoint_url=seaweed["primary"].endpoint)
    assert pipeline.outbox_drive_inline(row.pk)
