"""Real servers for tests: SeaweedFS (S3) and a Celery worker, started as subprocesses.

Reusable from any test folder; the storage suite's conftest wires them into fixtures."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ACCESS_KEY, SECRET_KEY = "cloudpacs-test", "cloudpacs-test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], *, timeout: float, interval: float = 0.1,
             what: str = "condition") -> object:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class SeaweedServer:
    """One SeaweedFS `weed server` (master + volume + filer + S3) on 127.0.0.1 = one region."""

    def __init__(self, data_dir: Path, bucket: str) -> None:
        self.data_dir = data_dir
        self.bucket = bucket
        self.ports = {name: free_port() for name in (
            "master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")}
        self.process: subprocess.Popen | None = None
        self.sse_key = os.urandom(32).hex()  # kept across restarts: its objects stay readable
        data_dir.mkdir(parents=True, exist_ok=True)
        self.config = data_dir / "s3.json"
        self.config.write_text(json.dumps({"identities": [{
            "name": "test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def env(self, region: str) -> dict[str, str]:
        prefix = f"STORAGE_{region.upper()}_"
        return {prefix + "BUCKET": self.bucket, prefix + "ENDPOINT": self.endpoint,
                prefix + "ACCESS_KEY": ACCESS_KEY, prefix + "SECRET_KEY": SECRET_KEY,
                prefix + "REGION": "us-east-1"}

    def ports_renew(self) -> None:
        """Other free ports (another process took one of these between their pick and weed's bind)."""
        self.ports = {name: free_port() for name in self.ports}

    def start(self) -> None:
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or "weed"
        p = self.ports
        args = [weed, "server", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
                f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}",
                "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
                "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}",
                f"-s3.config={self.config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.telemetry=false", "-volume.max=50", "-master.volumeSizeLimitMB=64"]
        log = open(self.data_dir / "weed.log", "ab")  # noqa: SIM115 - lives with the process
        # A key for its SSE-S3 (bucket-side encryption, asked for per object by STORAGE_*_SSE);
        # without one SeaweedFS refuses such a put with InternalError.
        env = {**os.environ, "WEED_S3_SSE_KEY": self.sse_key}
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        import boto3

        def s3_port_open():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"weed exited: {(self.data_dir / 'weed.log').read_text()[-500:]}")
            return port_open(self.ports["s3"])

        wait_for(s3_port_open, timeout=timeout, what="SeaweedFS S3 port")
        client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY, region_name="us-east-1")

        def bucket_ready():
            try:
                client.create_bucket(Bucket=self.bucket)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            except Exception:  # noqa: BLE001 - the filer may still be starting
                return False
            try:
                client.put_object(Bucket=self.bucket, Key="healthcheck/.probe", Body=b"")
                return True
            except Exception:  # noqa: BLE001 - no writable volume yet
                return False

        wait_for(bucket_ready, timeout=timeout, interval=0.2, what="a writable SeaweedFS bucket")

    def start_ready(self, attempts: int = 3) -> None:
        """Start and wait until writable; on other free ports when weed could not become
        ready (a port another process took between its pick and weed's bind)."""
        for attempt in range(attempts):
            self.start()
            try:
                self.wait_ready()
                return
            except (RuntimeError, TimeoutError):
                if attempt == attempts - 1:
                    raise
                self.stop()
                self.ports_renew()

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            # weed takes seconds to stop on SIGTERM; test data is disposable.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None
        wait_for(lambda: not port_open(self.ports["s3"]), timeout=10, what="SeaweedFS to stop")


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL naming the test database this process uses (for a worker subprocess)."""
    engine, name = settings_dict["ENGINE"], settings_dict["NAME"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{name}"
    user = settings_dict.get("USER") or ""
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{name}"


def stop_group(process: subprocess.Popen | None, grace: float) -> None:
    """End a server started with start_new_session=True and every process it started:
    SIGTERM to its process group, SIGKILL after `grace` seconds (at once if 0)."""
    if process is None or process.poll() is not None:
        return
    if grace:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            pass
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


class CeleryWorker:
    """`celery -A cloudpacs worker` in its own process group, consuming one test queue."""

    def __init__(self, env: dict[str, str], queue: str, log_dir: Path, concurrency: int = 2,
                 pool: str = "prefork") -> None:
        self.env = {**os.environ, **env}
        self.queue = queue
        self.concurrency = concurrency
        self.pool = pool
        self.log_path = log_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        celery = str(Path(sys.executable).parent / "celery")
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(
            [celery, "-A", "cloudpacs", "worker", "-Q", self.queue, "-c", str(self.concurrency),
             "--pool", self.pool, "-l", "info", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-n", f"test-{uuid.uuid4().hex[:8]}@%h"],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self._ready(), timeout=timeout, interval=0.2, what="the Celery worker")

    def _ready(self) -> bool:
        if self.process and self.process.poll() is not None:
            raise RuntimeError(f"Celery worker exited: {self.log_path.read_text()[-3000:]}")
        return self.log_path.exists() and " ready." in self.log_path.read_text()

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children), as a crash would."""
        stop_group(self.process, grace=0)

    def stop(self) -> None:
        stop_group(self.process, grace=15)

    def log_tail(self) -> str:
        return self.log_path.read_text()[-4000:] if self.log_path.exists() else ""


def web_server_command(port: int, workers: int = 2) -> list[str]:
    """The web server exactly as `make run` (scripts/run_embedded.sh) and docker/ start it:
    gunicorn, configured by gunicorn.conf.py in the repository root."""
    return [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers)]


class WebServer:
    """The web server (uvicorn workers under gunicorn) in its own process group."""

    def __init__(self, env: dict[str, str], log_dir: Path, workers: int = 2) -> None:
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "cloudpacs.settings", **env}
        self.port = free_port()
        self.workers = workers
        self.log_path = log_dir / f"web-{uuid.uuid4().hex[:8]}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(web_server_command(self.port, self.workers), cwd=REPO,
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for(self._ready, timeout=timeout, interval=0.2, what="the web server")

    def _ready(self) -> bool:
        if self.process and self.process.poll() is not None:
            raise RuntimeError(f"web server exited: {self.log_tail()}")
        # Every worker has booted once gunicorn has logged each one's startup.
        return self.log_tail(100_000).count("Application startup complete") >= self.workers

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def stop(self) -> None:
        stop_group(self.process, grace=30)

    def log_tail(self, size: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-size:] if self.log_path.exists() else ""
