"""`edge_gateway migrate` against Orthanc as the clinic's old PACS.

Orthanc 1.10 cannot bind 127.0.0.1 alone, so the test confines it in a network namespace of
its own with only loopback up (`ip netns add`, needs root), and reaches its DICOM port from
outside through a Unix socket (tests/unix_relay.py): a relay inside the namespace forwards
the socket to Orthanc, one in this process forwards a loopback port to the socket. The cloud
is a live CloudPACS server; the migration runs as a clinic would run it, in its own process
with no database server."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from archive.models import Instance
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import free_port, wait_for
from tests.unix_relay import TcpToUnix

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("Orthanc"),
                       reason="needs root, iproute2 and Orthanc (apt-get install orthanc)"),
]
REPO = Path(__file__).resolve().parents[2]
NO_DATABASE = "postgres://nobody@127.0.0.1:1/none"


@pytest.fixture
def old_pacs(tmp_path):
    """Orthanc in a loopback-only namespace; yields the loopback port that reaches its DICOM."""
    ns = f"cloudpacs-test-{os.getpid()}-{time.monotonic_ns() % 100000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    processes = []
    relay = None
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        config = {"Name": "OLDPACS", "DicomAet": "OLDPACS", "DicomPort": 4242, "HttpPort": 8042,
                  "StorageDirectory": str(tmp_path / "orthanc"), "IndexDirectory": str(tmp_path / "orthanc"),
                  "RemoteAccessAllowed": False, "DicomCheckModalityHost": False, "DicomAlwaysAllowStore": True,
                  "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True, "StorageCompression": False}
        (tmp_path / "orthanc.json").write_text(json.dumps(config))
        log = open(tmp_path / "orthanc.log", "wb")  # noqa: SIM115 - closed with the process
        processes.append(subprocess.Popen(["ip", "netns", "exec", ns, "Orthanc", str(tmp_path / "orthanc.json")],
                                          stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TCP_NODELAY": "1"}))
        socket_path = str(tmp_path / "orthanc-dicom.sock")
        processes.append(subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "tests.unix_relay",
                                           socket_path, "4242"], cwd=REPO))
        wait_for(lambda: os.path.exists(socket_path), timeout=10, what="the relay in the namespace")
        relay = TcpToUnix(socket_path)
        wait_for(lambda: _echo(relay.port), timeout=30, what="Orthanc")
        yield relay.port
    finally:
        if relay:
            relay.close()
        for process in processes:
            process.terminate()
            process.wait(20)
        subprocess.run(["ip", "netns", "delete", ns], check=False)


def _echo(port: int) -> bool:
    ae = AE(ae_title="CLOUDPACS_EDGE")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="OLDPACS")
    if not assoc.is_established:
        return False
    ok = assoc.send_c_echo().Status == 0x0000
    assoc.release()
    return ok


def load(port: int, datasets) -> None:
    ae = AE(ae_title="LOADER")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="OLDPACS")
    assert assoc.is_established
    assert [assoc.send_c_store(ds).Status for ds in datasets] == [0] * len(datasets)
    assoc.release()


def migrate(cloud_url: str, token: str, spool: Path, source_port: int, log: Path, port: int) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", "edge_gateway", "migrate", "--source", f"OLDPACS@127.0.0.1:{source_port}",
             "--since", "20190101", "--cloud", cloud_url, "--spool", str(spool), "--max-backoff", "1",
             "--batch-instances", "2", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "DATABASE_URL": NO_DATABASE, "CLOUDPACS_EDGE_TOKEN": token})


def test_migrate_resumes_skips_what_the_cloud_holds_and_reports_failures(old_pacs, live_server, tenant, make_token,
                                                                          tmp_path):
    studies = {
        "old": make_ct_series(1, 32, 32, study_date="20180101"),  # before --since: left alone
        "held": make_ct_series(2, 32, 32, study_date="20190505"),  # the cloud has it already
        "a": make_ct_series(3, 32, 32, study_date="20200101"),
        "b": make_ct_series(2, 32, 32, study_date="20210101"),
        "clash": make_ct_series(1, 32, 32, study_date="20220101"),
        "partial": make_ct_series(2, 32, 32, study_date="20230101"),
    }
    for series in studies.values():
        load(old_pacs, series)
    for ds in studies["held"]:
        assert ingest_bytes(tenant, to_bytes(ds)).ok
    # The cloud has as many instances of "partial" as the old PACS, but not the same ones
    # (one came from the modality directly): it must still be migrated.
    extra = make_ct_series(3, 32, 32, study_uid=studies["partial"][0].StudyInstanceUID,
                           series_uid=studies["partial"][0].SeriesInstanceUID)[2]
    for ds in (studies["partial"][0], extra):
        assert ingest_bytes(tenant, to_bytes(ds)).ok
    # The cloud holds another instance under the clashing study's SOP Instance UID.
    other = make_ct_series(1, 32, 32)[0]
    other.SOPInstanceUID = studies["clash"][0].SOPInstanceUID
    assert ingest_bytes(tenant, to_bytes(other)).ok

    token = make_token(tenant, scopes=("upload", "read"))
    cloud = f"{live_server.url}/t/{tenant.slug}/dicomweb"
    spool, log = tmp_path / "spool", tmp_path / "migrate.log"
    edge_port = free_port()
    first = migrate(cloud, token, spool, old_pacs, log, edge_port)
    # Stopped (as by Ctrl-C) once the first study has been retrieved; meanwhile a modality
    # sends to the edge, which keeps receiving during a migration.
    wait_for(lambda: "instances 2/" in log.read_text() or first.poll() is not None, timeout=120,
             what="the first progress line")
    [scanned] = make_ct_series(1, 32, 32)
    modality = AE(ae_title="CT1")
    modality.add_requested_context(CTImageStorage)
    assoc = modality.associate("127.0.0.1", edge_port, ae_title="CLOUDPACS_EDGE")
    assert assoc.is_established and assoc.send_c_store(scanned).Status == 0x0000
    assoc.release()
    first.send_signal(signal.SIGTERM)
    first.wait(60)
    received_first = json.loads((spool / "state.json").read_text()).get("received", 0)

    second = migrate(cloud, token, spool, old_pacs, log, free_port())
    assert second.wait(180) != 0  # a study failed: said in the exit status too
    output = log.read_text()
    assert "5 studies at OLDPACS since 20190101" in output
    report = output[output.rindex("migration:"):]
    assert report.startswith("migration: 4 of 5 studies in the cloud (1 were there already), 1 failed")
    assert f"failed: {studies['clash'][0].StudyInstanceUID}: the cloud refused 1 instances" in report
    # Each retrieved once, across the two runs: 3 + 2 + 1, and of "partial" only the
    # instance the cloud lacked; never the held study; and the modality's one.
    state = json.loads((spool / "state.json").read_text())
    assert state["received"] == 3 + 2 + 1 + 1 + 1 and received_first >= 1
    assert Instance.objects.for_tenant(tenant).filter(sop_instance_uid=scanned.SOPInstanceUID).exists()
    for key in ("held", "a", "b", "partial"):
        uids = [ds.SOPInstanceUID for ds in studies[key]]
        assert Instance.objects.for_tenant(tenant).filter(sop_instance_uid__in=uids).count() == len(uids)
    assert not Instance.objects.for_tenant(tenant).filter(sop_instance_uid=studies["old"][0].SOPInstanceUID).exists()
    assert "ETA" in output and "B/s" in output
    # The plaintext each C-GET brought in was sealed into the queue and removed.
    assert [p.name for p in (spool / "incoming").iterdir()] == []
