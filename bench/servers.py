"""Start the two servers being compared, each on loopback with its own scratch folder:
CloudPACS (as `make run` deploys it) and Orthanc with its DICOMweb plugin (the peer)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import requests

from bench import netns
from tests.servers import free_port, port_open, wait_for, web_server_command

ROOT = Path(__file__).resolve().parent.parent
ORTHANC_PLUGINS = "/usr/share/orthanc/plugins"


def wait_http(url: str, timeout: float = 60, **kwargs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2, **kwargs).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


ALLOW_STORESCU = ("from archive.gateway.models import DicomPeer; from tenants.models import Tenant; "
                  "DicomPeer.objects.for_tenant(Tenant.objects.get(slug='bench')).create(ae_title='STORESCU')")


def rss_peak_kb(pid: int) -> int:
    """Peak resident memory (VmHWM) of a process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def process_tree(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    pids = [pid]
    for child in out:
        pids.extend(process_tree(int(child)))
    return pids


class Server:
    def __init__(self, name, base_url, proc, workdir, headers=None, dicom_port=None, ae_title=None):
        self.name, self.base_url, self.proc, self.workdir = name, base_url, proc, workdir
        self.headers = headers or {}
        self.dicom_port, self.ae_title = dicom_port, ae_title
        self.session = requests.Session()  # one kept-alive connection for every STOW body

    def peak_rss_mb(self) -> float:
        return max(rss_peak_kb(p) for p in process_tree(self.proc.pid)) / 1024


@contextmanager
def orthanc():
    if not netns.inside():
        raise RuntimeError("Orthanc listens on every interface: start it only inside the bench's "
                           "network namespace (bench.netns.run_confined)")
    if not shutil.which("Orthanc"):
        raise RuntimeError("Orthanc is not installed: apt-get install orthanc orthanc-dicomweb")
    workdir = Path(tempfile.mkdtemp(prefix="bench-orthanc-"))
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "BENCH", "StorageDirectory": str(workdir / "db"), "IndexDirectory": str(workdir / "db"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "HttpServerEnabled": True,
        "Plugins": [ORTHANC_PLUGINS + "/libOrthancDicomWeb.so"],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "StorageCompression": False, "HttpCompressionEnabled": False, "ConcurrentJobs": 2,
        "DicomCheckModalityHost": False, "DicomAlwaysAllowStore": True,
    }
    (workdir / "orthanc.json").write_text(json.dumps(config))
    env = {**os.environ, "TCP_NODELAY": "1"}
    log = open(workdir / "orthanc.log", "w")
    proc = subprocess.Popen(["Orthanc", str(workdir / "orthanc.json")], stdout=log, stderr=log, env=env)
    try:
        wait_http(f"http://127.0.0.1:{http_port}/system")
        yield Server("Orthanc", f"http://127.0.0.1:{http_port}/dicom-web", proc, workdir,
                     dicom_port=dicom_port, ae_title="ORTHANC")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def cloudpacs(workers: int = 2, extra_env: dict | None = None, worker: bool = True):
    """CloudPACS as `make run` starts it (web server, DICOM gateway and, unless `worker` is
    False, the Celery worker with beat) with a fresh database and storage in a scratch
    folder. Uses DATABASE_URL when set (PostgreSQL), else SQLite in the scratch folder."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-cloudpacs-"))
    port = free_port()
    env = {**os.environ, "CLOUDPACS_VAR_DIR": str(workdir), "DJANGO_SETTINGS_MODULE": "cloudpacs.settings",
           "LOG_LEVEL": "WARNING", **(extra_env or {})}
    created_db = None
    if os.environ.get("DATABASE_URL"):
        created_db = f"cloudpacs_bench_{os.getpid()}"
        pg_host = netns.postgres_host()
        subprocess.run(["psql", "-h", pg_host, "-U", "postgres", "-qc", f"CREATE DATABASE {created_db}"],
                       check=True)
        env["DATABASE_URL"] = f"postgres://postgres@{quote(pg_host, safe='')}:5432/{created_db}"
    py = sys.executable
    manage = [py, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
    subprocess.run([*manage, "create_tenant", "bench", "--name", "Bench", "--owner", "bench@example.com",
                    "--password", "bench-password-123"], env=env, check=True, cwd=ROOT, capture_output=True)
    out = subprocess.run([*manage, "create_api_token", "bench", "--name", "bench", "--scopes", "upload,read"],
                         env=env, check=True, cwd=ROOT, capture_output=True, text=True).stdout
    token = out.strip().splitlines()[-1]
    subprocess.run([*manage, "shell", "-c", ALLOW_STORESCU], env=env, check=True, cwd=ROOT, capture_output=True)
    dicom_port = free_port()
    gateway_log = open(workdir / "gateway.log", "w")
    gateway = subprocess.Popen([*manage, "dicom_gateway", "--port", str(dicom_port)], env=env, cwd=ROOT,
                               stdout=gateway_log, stderr=gateway_log)
    log = open(workdir / "web.log", "w")
    proc = subprocess.Popen(web_server_command(port, workers), env=env, cwd=ROOT, stdout=log, stderr=log)
    celery = None
    if worker:  # as `make run` starts it: thread pool, beat inside, the archive pipeline running
        worker_log = open(workdir / "worker.log", "w")
        celery = subprocess.Popen(
            [str(Path(py).parent / "celery"), "-A", "cloudpacs", "worker", "--loglevel=WARNING",
             "--pool", "threads", "--concurrency=4", "--beat", f"--schedule={workdir / 'beat'}"],
            env=env, cwd=ROOT, stdout=worker_log, stderr=worker_log)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        wait_for(lambda: port_open(dicom_port), timeout=60, what="the DICOM gateway")
        server = Server("CloudPACS", f"http://127.0.0.1:{port}/t/bench/dicomweb", proc, workdir,
                        headers={"Authorization": f"Bearer {token}"}, dicom_port=dicom_port, ae_title="BENCH")
        server.gateway = gateway
        server.env = env
        yield server
    finally:
        for process in (proc, gateway, *([celery] if celery else [])):
            process.terminate()
            process.wait(timeout=30)
        log.close()
        gateway_log.close()
        if created_db:
            subprocess.run(["psql", "-h", netns.postgres_host(), "-U", "postgres", "-qc",
                            f"DROP DATABASE IF EXISTS {created_db} WITH (FORCE)"], check=False)
        shutil.rmtree(workdir, ignore_errors=True)
