"""The on-site edge gateway as a clinic runs it: `manage.py edge_gateway` in its own process
with no database server (its DATABASE_URL points at nothing), dcmtk's storescu and
pynetdicom as modalities, the cloud a live CloudPACS server behind a proxy the test can take
down or stall. Nothing acknowledged is lost; nothing is sent twice as another instance."""

import io
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from archive.models import Instance
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes
from tests.dimse_peers import send_half_a_data_set
from tests.servers import free_port, wait_for
from tests.tcp_proxy import SwitchableProxy

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parents[2]


class Edge:
    def __init__(self, spool: Path, cloud: str, token: str, log_dir: Path):
        self.spool, self.cloud, self.token = spool, cloud, token
        self.port, self.status_port = free_port(), free_port()
        self.log = log_dir / "edge.log"
        self.process = None
        self.extra: list[str] = []

    def start(self):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "cloudpacs.settings",
               # No database server at the clinic: any use of one would fail here.
               "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "CLOUDPACS_EDGE_TOKEN": self.token}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "edge_gateway", "--cloud", self.cloud, "--spool", str(self.spool),
                 "--host", "127.0.0.1", "--port", str(self.port), "--status-port", str(self.status_port),
                 "--max-backoff", "1", "--batch-instances", "4", *self.extra],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._ready, timeout=30, what="the edge gateway")
        return self

    def _ready(self):
        if self.process.poll() is not None:
            raise RuntimeError(self.log.read_text()[-3000:])
        return "edge gateway: DICOM on" in self.log.read_text()

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def status(self) -> dict:
        out = subprocess.run([sys.executable, "manage.py", "edge_gateway", "status", "--spool", str(self.spool),
                              "--json"], cwd=REPO, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"})
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def page(self, path="/status.json") -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}{path}", timeout=10) as answer:
            return answer.read()

    def queued(self) -> int:
        return len([p for p in (self.spool / "queue").iterdir() if not p.name.startswith(".")])


@pytest.fixture
def cloud(live_server, tenant, make_token):
    proxy = SwitchableProxy(int(live_server.url.rsplit(":", 1)[1]))
    yield proxy, make_token(tenant, scopes=("upload",))
    proxy.close()


@pytest.fixture
def edge(cloud, tenant, tmp_path):
    proxy, token = cloud
    edges = []

    def start():
        edge = Edge(tmp_path / "spool", f"{proxy.url}/t/{tenant.slug}/dicomweb", token, tmp_path).start()
        edges.append(edge)
        return edge

    yield start
    for edge in edges:
        edge.stop()


def store(port: int, datasets) -> list[int]:
    ae = AE(ae_title="CT1")
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title="CLOUDPACS_EDGE")
    assert assoc.is_established
    try:
        return [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()


def in_cloud(tenant, datasets) -> int:
    return Instance.objects.for_tenant(tenant).filter(
        sop_instance_uid__in=[ds.SOPInstanceUID for ds in datasets]).count()


def test_storescu_to_the_cloud_and_the_queue_empties(edge, tenant, tmp_path):
    running = edge()
    series = make_ct_series(6, 32, 32)
    files = []
    for i, ds in enumerate(series):
        files.append(tmp_path / f"{i}.dcm")
        files[-1].write_bytes(to_bytes(ds))
    result = subprocess.run(["storescu", "-aet", "CT1", "-aec", "CLOUDPACS_EDGE", "127.0.0.1", str(running.port),
                             *map(str, files)], capture_output=True, text=True, timeout=60,
                            env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    wait_for(lambda: in_cloud(tenant, series) == 6 and running.queued() == 0, timeout=60,
             what="the cloud to hold every instance")
    status = running.status()
    assert (status["queued"], status["sent"], status["received"], status["running"]) == (0, 6, 6, True)
    assert json.loads(running.page())["queued"] == 0
    assert b"Everything received has been sent." in running.page("/")
    # The spool held ciphertext only: no patient name on disk at any point is checked by
    # reading what is left (the salt and state), and by the queue being empty.
    assert b"Doe" not in (running.spool / "state.json").read_bytes()


def test_outage_queues_then_delivers(edge, cloud, tenant):
    proxy, _ = cloud
    proxy.up.clear()  # the clinic's internet is down
    running = edge()
    series = make_ct_series(5, 32, 32)
    assert store(running.port, series) == [0x0000] * 5  # acknowledged from the spool
    wait_for(lambda: running.status().get("last_error"), timeout=30, what="the failed upload to show")
    status = running.status()
    assert status["queued"] == 5 and status["bytes"] > 5 * 32 * 32 * 2
    assert "not reachable" in status["last_error"]
    assert in_cloud(tenant, series) == 0
    # Sealed in the spool: no patient name or pixel bytes in clear.
    for path in (running.spool / "queue").iterdir():
        data = path.read_bytes()
        assert b"Doe^Jane" not in data and series[0].SOPInstanceUID.encode() not in data
    proxy.up.set()
    wait_for(lambda: in_cloud(tenant, series) == 5 and running.queued() == 0, timeout=60,
             what="delivery once the cloud is back")
    assert not running.status()["last_error"]


def test_power_cut_mid_upload_loses_nothing_and_sends_nothing_twice(edge, cloud, tenant):
    proxy, _ = cloud
    proxy.up.clear()  # everything is received before any upload starts
    first = edge()
    series = make_ct_series(8, 128, 128)  # 32 KB each: a batch of 4 is 128 KB
    assert store(first.port, series) == [0x0000] * 8
    proxy.stall_after = 40_000  # the next upload hangs inside its first batch
    proxy.up.set()
    assert proxy.stalled.wait(30)
    first.kill()  # a power cut: no clean shutdown
    assert first.queued() == 8
    proxy.stall_after = None
    second = edge()  # the same spool
    wait_for(lambda: second.queued() == 0, timeout=60, what="the restarted gateway to deliver")
    assert in_cloud(tenant, series) == 8
    assert Instance.objects.for_tenant(tenant).count() == 8  # each once
    assert second.status()["rejected"] == 0


def test_bad_input_is_refused_and_a_conflict_is_kept_aside(edge, tenant):
    running = edge()
    [bad] = make_ct_series(1, 16, 16)
    bad.SOPInstanceUID = "1.2.03.4"  # not a UID
    assert store(running.port, [bad]) == [0xA900]
    assert running.queued() == 0
    # The cloud holds this UID with other content: refused for good, kept for a person.
    [theirs] = make_ct_series(1, 16, 16)
    assert ingest_bytes(tenant, to_bytes(theirs)).ok
    mine = pydicom.dcmread(io.BytesIO(to_bytes(theirs)))
    mine.PatientName = "Other^Content"
    assert store(running.port, [mine]) == [0x0000]
    wait_for(lambda: running.status()["rejected"] == 1, timeout=60, what="the conflict to be kept aside")
    assert running.queued() == 0
    [note] = [json.loads(p.read_text()) for p in (running.spool / "rejected").glob("*.json")]
    assert note["code"] == 0x0111


def test_one_refused_instance_does_not_hold_the_queue(edge, cloud, tenant):
    """A proxy in front of the cloud refuses bodies over 300 kB (413). The oldest instance is
    larger: its batch is refused whole, each instance then goes alone, the others arrive, and
    the large one is kept in rejected/ with the reason."""
    proxy, _ = cloud
    proxy.up.clear()
    running = edge()
    [large] = make_ct_series(1, 512, 512)
    small = make_ct_series(3, 64, 64)
    assert store(running.port, [large, *small]) == [0x0000] * 4
    proxy.refuse_larger_than = 300_000
    proxy.up.set()
    wait_for(lambda: in_cloud(tenant, small) == 3 and running.status()["rejected"] == 1, timeout=60,
             what="the small instances to pass the large one")
    assert running.queued() == 0 and in_cloud(tenant, [large]) == 0
    [note] = [json.loads(p.read_text()) for p in (running.spool / "rejected").glob("*.json")]
    assert note["reason"] == "refused by the cloud (HTTP 413)"


def test_two_versions_of_one_instance_are_both_accounted_for(edge, cloud, tenant):
    """A modality sends an instance, then changed content under the same SOP Instance UID.
    The cloud keeps the first; the second is kept in rejected/ (never silently dropped)."""
    proxy, _ = cloud
    proxy.up.clear()
    running = edge()
    [first] = make_ct_series(1, 32, 32)
    second = pydicom.dcmread(io.BytesIO(to_bytes(first)))
    second.PatientName = "Changed^Name"
    assert store(running.port, [first, second]) == [0x0000, 0x0000]
    proxy.up.set()
    wait_for(lambda: running.queued() == 0, timeout=60, what="both to be settled")
    assert in_cloud(tenant, [first]) == 1
    [note] = [json.loads(p.read_text()) for p in (running.spool / "rejected").glob("*.json")]
    assert note["code"] == 0x0111


def test_an_aborted_association_leaves_nothing_behind(edge, cloud, tenant):
    """A modality that aborts half-way through a data set: nothing acknowledged, nothing
    queued, and the half-received plaintext removed at once."""
    proxy, _ = cloud
    proxy.up.clear()
    running = edge()
    [ds] = make_ct_series(1, 512, 512)
    ae = AE(ae_title="CT1")
    ae.add_requested_context(CTImageStorage, [ImplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", running.port, ae_title="CLOUDPACS_EDGE")
    assert assoc.is_established
    send_half_a_data_set(assoc, ds)  # the command and half of the data set
    incoming = running.spool / "incoming"
    wait_for(lambda: list(incoming.iterdir()), timeout=30, what="the data set to arrive")
    assoc.abort()
    wait_for(lambda: not list(incoming.iterdir()), timeout=30, what="the half-received data set to go")
    assert running.queued() == 0
    running.stop()
    assert running.process.returncode == 0


def test_memory_stays_bounded_for_a_large_instance(edge, tenant):
    """A 192 MB instance (a long multiframe): the gateway seals and uploads it in segments;
    its peak memory stays far below the instance's size."""
    running = edge()
    [ds] = make_ct_series(1, 512, 512)
    frames = 384
    ds.NumberOfFrames = frames
    ds.PixelData = np.zeros((frames, 512, 512), dtype=np.uint16).tobytes()
    assert store(running.port, [ds]) == [0x0000]
    wait_for(lambda: running.queued() == 0, timeout=180, what="the large instance to be delivered")
    assert in_cloud(tenant, [ds]) == 1
    status = Path(f"/proc/{running.process.pid}/status").read_text()
    peak_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
    assert peak_kb < 160 * 1024, f"peak RSS {peak_kb} kB for a {len(ds.PixelData) >> 20} MB instance"


def test_only_allowed_modalities_and_only_https_clouds(cloud, tenant, tmp_path):
    proxy, token = cloud
    edge = Edge(tmp_path / "spool", f"{proxy.url}/t/{tenant.slug}/dicomweb", token, tmp_path)
    edge.extra = ["--allow-ae", "CT1"]
    edge.start()
    try:
        [ds] = make_ct_series(1, 16, 16)
        ae = AE(ae_title="STRANGER")
        ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
        assert not ae.associate("127.0.0.1", edge.port, ae_title="CLOUDPACS_EDGE").is_established
        assert store(edge.port, [ds]) == [0x0000]  # CT1
    finally:
        edge.stop()
    result = subprocess.run([sys.executable, "manage.py", "edge_gateway", "--cloud", "http://pacs.example.org/t/x/dicomweb",
                             "--token", token, "--spool", str(tmp_path / "other"), "--status-port", "0"],
                            cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"})
    assert result.returncode != 0 and "must be https://" in result.stderr


def test_a_second_gateway_on_the_same_spool_is_refused(edge, cloud, tenant, tmp_path):
    proxy, token = cloud
    edge()
    result = subprocess.run([sys.executable, "manage.py", "edge_gateway", "--cloud", f"{proxy.url}/t/x/dicomweb",
                             "--token", token, "--spool", str(tmp_path / "spool"), "--port", str(free_port()),
                             "--status-port", "0"], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"})
    assert result.returncode != 0
    assert "another edge gateway is running" in result.stderr
