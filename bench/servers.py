"""Start the two servers being compared, each on loopback with its own scratch folder:
CloudPACS as `make run` starts it (scripts/run_embedded.sh: gunicorn from gunicorn.conf.py,
the Celery worker with beat, the DICOM gateway) and Orthanc with its DICOMweb plugin.

Each start is fresh: a new scratch folder, for CloudPACS a new database (a PostgreSQL
database cloned from a migrated template when DATABASE_URL is set, else a fresh SQLite
file), for Orthanc a new storage folder."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from bench import database, netns, proctree
from tests.servers import free_port, port_open, wait_for, web_server_command

ROOT = Path(__file__).resolve().parent.parent
ORTHANC_PLUGINS = "/usr/share/orthanc/plugins"
BROKER_VARS = ("CELERY_BROKER_URL", "CACHE_URL")

# One Django process sets up a clinic: migrations, the clinic, an API token (printed last)
# and the AE titles storescu calls from, allowed to store.
SETUP_SCRIPT = """
import io
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("create_tenant", "bench", "--name", "Bench", "--owner", "bench@example.com",
             "--password", "bench-password-123", stdout=io.StringIO())
from archive.gateway.models import DicomPeer
from tenants.models import Tenant
for title in ["STORESCU", "STORESCU0", "STORESCU1", "STORESCU2", "STORESCU3"]:  # one sender, and cstore-4's
    DicomPeer.objects.for_tenant(Tenant.objects.get(slug="bench")).create(ae_title=title)
token = io.StringIO()
call_command("create_api_token", "bench", "--name", "bench", "--scopes", "upload,read", stdout=token)
print(token.getvalue().strip().splitlines()[-1])
"""


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


class ServerDied(RuntimeError):
    """One of a server's processes exited while the bench was using it: the message says
    which and its last error line; `log_tail` holds the end of its log."""

    def __init__(self, message: str, log_tail: str):
        super().__init__(message)
        self.log_tail = log_tail


class Server:
    """A started server: where to reach it, and its processes by role (`tree`)."""

    def __init__(self, name, base_url, proc, workdir, headers=None, dicom_port=None, ae_title=None):
        self.name, self.base_url, self.proc, self.workdir = name, base_url, proc, workdir
        self.headers = headers or {}
        self.dicom_port, self.ae_title = dicom_port, ae_title
        self.session = requests.Session()  # one kept-alive connection for every STOW body
        self.tree = proctree.ProcessTree({})
        # How far the archive pipeline is (CloudPACS only: Orthanc has no second region).
        self.progress: database.ArchiveProgress | None = None
        self.env: dict = {}
        # Processes of the infrastructure it runs on (a private Redis): measured apart.
        self.infrastructure = proctree.ProcessTree({})
        self.processes: dict[str, subprocess.Popen] = {}

    def check_running(self) -> None:
        """Raise ServerDied, with the end of its log, if a process of the server exited."""
        for role, process in self.processes.items():
            if process.poll() is not None:
                tail = _log_tail(self.workdir / f"{role}.log")
                raise ServerDied(f"{self.name}'s {role} exited with status {process.returncode}; "
                                 f"its log's last error: {_last_error(tail)}", tail)

    def wait_archived(self, expected_instances: int, timeout: float = 1800) -> None:
        """Until `expected_instances` are stored and every one is verified in both regions
        (CloudPACS); at once for a server without an archive pipeline (Orthanc)."""
        if self.progress:
            self.progress.wait_all_verified(expected_instances, timeout, check=self.check_running)

    def stored_instances(self) -> int:
        return self.progress.now().instances if self.progress else 0

    def peak_rss_mb(self) -> float:
        """Peak resident memory (VmHWM) of the tree's largest process, in MB."""
        peaks = [_vm_hwm_kb(pid) for pids in self.tree.pids().values() for pid in pids]
        return max(peaks, default=0) / 1024


def _log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no log)"


def _last_error(log: str) -> str:
    """The last line of a log that names an error (a traceback's last line)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors or lines or ["(empty log)"])[-1]


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def _start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _stop(processes: list[subprocess.Popen], timeout: float = 30) -> None:
    """Stop the processes the bench started, then any of their descendants left behind
    (a parse process whose worker was killed), each by its own id."""
    tree = proctree.ProcessTree({str(p.pid): p.pid for p in processes if p.poll() is None})
    descendants = [pid for pids in tree.pids().values() for pid in pids]
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pid in proctree.wait_gone(descendants, timeout=5):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# -- Orthanc --------------------------------------------------------------------------

@contextmanager
def orthanc(http_compression: bool = False):
    """`http_compression`: Orthanc's own default (gzip where the client accepts it), for the
    viewer bench; the ingest and retrieve workloads keep it off, as measured before."""
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
        "StorageCompression": False, "HttpCompressionEnabled": http_compression, "ConcurrentJobs": 2,
        "DicomCheckModalityHost": False, "DicomAlwaysAllowStore": True,
    }
    (workdir / "orthanc.json").write_text(json.dumps(config))
    proc = _start(["Orthanc", str(workdir / "orthanc.json")], {**os.environ, "TCP_NODELAY": "1"},
                  workdir / "orthanc.log")
    try:
        wait_http(f"http://127.0.0.1:{http_port}/system")
        server = Server("Orthanc", f"http://127.0.0.1:{http_port}/dicom-web", proc, workdir,
                        dicom_port=dicom_port, ae_title="ORTHANC")
        server.tree = proctree.ProcessTree({"orthanc": proc.pid})
        server.processes = {"orthanc": proc}
        yield server
    finally:
        _stop([proc])
        shutil.rmtree(workdir, ignore_errors=True)


# -- CloudPACS ------------------------------------------------------------------------

@dataclass
class Template:
    """A migrated clinic to clone for each fresh start: its scratch folder (master key, and
    the SQLite database when there is no DATABASE_URL) and, with PostgreSQL, its database."""

    var_dir: Path
    token: str
    postgres_server: str | None
    postgres_database: str | None


def _base_env(var_dir: Path, extra_env: dict | None) -> dict:
    # As scripts/run_embedded.sh exports it; the scratch folder stands for var/.
    return {**os.environ, "CLOUDPACS_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "cloudpacs.settings",
            **(extra_env or {})}


def _set_up_clinic(env: dict) -> str:
    """Migrate the database `env` names, create the bench's clinic; returns its API token."""
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", SETUP_SCRIPT], env=env,
                          cwd=ROOT, check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def cloudpacs_template(extra_env: dict | None = None):
    """Migrate once; every `cloudpacs(template=...)` then starts from a copy of it."""
    var_dir = Path(tempfile.mkdtemp(prefix="bench-cloudpacs-template-"))
    env = _base_env(var_dir, extra_env)
    pg_server = database.postgres_server_url()
    pg_name = f"cloudpacs_bench_template_{os.getpid()}" if pg_server else None
    try:
        if pg_server:
            database.create_database(pg_server, pg_name)
            env["DATABASE_URL"] = database.database_url(pg_server, pg_name)
        yield Template(var_dir, _set_up_clinic(env), pg_server, pg_name)
    finally:
        if pg_server:
            database.drop_database(pg_server, pg_name)
        shutil.rmtree(var_dir, ignore_errors=True)


def _loopback_redis(url: str) -> bool:
    return url.startswith("redis://") and urlsplit(url).hostname in database.LOOPBACK


@contextmanager
def _private_redis(workdir: Path, env: dict):
    """Inside the bench's namespace the machine's Redis is out of reach (it listens on the
    machine's loopback, not the namespace's): a broker URL pointing there gets a fresh
    redis-server of its own, in the namespace, for this start only. Yields its process."""
    urls = {name: env[name] for name in BROKER_VARS if _loopback_redis(env.get(name, ""))}
    if not (urls and netns.inside()):
        yield None
        return
    port = free_port()
    proc = _start(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                   "--appendonly", "no", "--dir", str(workdir)], env, workdir / "redis.log")
    try:
        wait_for(lambda: port_open(port), timeout=30, what="redis-server")
        for name, url in urls.items():
            parts = urlsplit(url)
            env[name] = urlunsplit(parts._replace(netloc=parts.netloc.replace(
                f"{parts.hostname}:{parts.port or 6379}", f"127.0.0.1:{port}")))
        yield proc
    finally:
        _stop([proc])


def _fresh_database(stack: ExitStack, workdir: Path, env: dict, template: Template | None) -> str:
    """Give `env` a database of its own for this start; returns the clinic's API token."""
    pg_server = template.postgres_server if template else database.postgres_server_url()
    if pg_server:
        name = f"cloudpacs_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        database.create_database(pg_server, name, template.postgres_database if template else None)
        stack.callback(database.drop_database, pg_server, name)
        env["DATABASE_URL"] = database.database_url(pg_server, name)
    if template:
        shutil.copytree(template.var_dir, workdir, dirs_exist_ok=True)
        return template.token
    return _set_up_clinic(env)


def _archive_progress(env: dict, workdir: Path) -> database.ArchiveProgress:
    url = env.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return database.ArchiveProgress(postgres_url=url)
    return database.ArchiveProgress(sqlite_path=workdir / "cloudpacs.sqlite3")


@contextmanager
def cloudpacs(workers: int | None = None, extra_env: dict | None = None, worker: bool = True,
              template: Template | None = None):
    """CloudPACS as `make run` starts it: gunicorn (gunicorn.conf.py, WEB_WORKERS or two
    workers), the DICOM gateway and, unless `worker` is False, the Celery worker with beat
    (threads pool, concurrency 4), with a fresh database and storage in a scratch folder.
    Uses DATABASE_URL and CELERY_BROKER_URL when set (PostgreSQL, Redis)."""
    workers = workers or int(os.environ.get("WEB_WORKERS", "2"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-cloudpacs-"))
    env = _base_env(workdir, extra_env)
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        token = _fresh_database(stack, workdir, env, template)
        redis = stack.enter_context(_private_redis(workdir, env))
        py = sys.executable
        port, dicom_port = free_port(), free_port()
        roles = {
            "web": _start(web_server_command(port, workers), env, workdir / "web.log"),
            "gateway": _start([py, str(ROOT / "manage.py"), "dicom_gateway", "--port", str(dicom_port)], env,
                              workdir / "gateway.log"),
        }
        if worker:
            roles["worker"] = _start(
                [str(Path(py).parent / "celery"), "-A", "cloudpacs", "worker", "--loglevel=INFO",
                 "--pool", "threads", "--concurrency=4", "--beat", f"--schedule={workdir / 'celerybeat-schedule'}"],
                env, workdir / "worker.log")
        stack.callback(_stop, list(roles.values()))
        wait_http(f"http://127.0.0.1:{port}/healthz")
        wait_for(lambda: port_open(dicom_port), timeout=60, what="the DICOM gateway")
        server = Server("CloudPACS", f"http://127.0.0.1:{port}/t/bench/dicomweb", roles["web"], workdir,
                        headers={"Authorization": f"Bearer {token}"}, dicom_port=dicom_port, ae_title="BENCH")
        server.gateway = roles["gateway"]
        server.env = env
        server.tree = proctree.ProcessTree({role: proc.pid for role, proc in roles.items()})
        server.processes = roles
        server.infrastructure = proctree.ProcessTree({"redis": redis.pid} if redis else {})
        server.progress = _archive_progress(env, workdir)
        stack.callback(server.progress.close)
        yield server
