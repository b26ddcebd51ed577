"""A localstripe (fake Stripe API) server for tests, started as a subprocess.

localstripe's own `start()` listens on every address and keeps its store in
/tmp/localstripe.pickle, shared by every run on the machine; this one listens on
127.0.0.1 only and keeps its store, and its log, in a folder the caller gives."""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.servers import free_port, port_open, stop_group, wait_for

# Run as `python -c _SERVER <store path> <port>`.
_SERVER = """
import logging, pickle, sys
import aiohttp.web
from localstripe import resources
from localstripe.server import app

store_path, port = sys.argv[1], int(sys.argv[2])

def dump_to_disk(store):
    with open(store_path, "wb") as f:
        pickle.dump(store, f, protocol=pickle.HIGHEST_PROTOCOL)

resources.Store.dump_to_disk = dump_to_disk
logging.basicConfig(level=logging.INFO)
aiohttp.web.run_app(app, host="127.0.0.1", port=port)
"""


class LocalStripe:
    """localstripe on 127.0.0.1:<free port>, in its own process group."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = data_dir / "localstripe.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-c", _SERVER, str(self.data_dir / "localstripe.pickle"),
             str(self.port)],
            cwd=self.data_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._ready, timeout=timeout, what="localstripe")

    def _ready(self) -> bool:
        if self.process and self.process.poll() is not None:
            raise RuntimeError(f"localstripe exited: {self.log_tail()}")
        return port_open(self.port)

    def configure_webhook(self, name: str, url: str, secret: str,
                          events: list[str] | None = None) -> None:
        """Have localstripe POST its events (or only `events`) to `url`, signed with `secret`."""
        body = {"url": url, "secret": secret, **({"events": events} if events is not None else {})}
        self._post(f"/_config/webhooks/{name}", body)

    def flush(self) -> None:
        """Forget every object (customers, invoices...); webhooks stay configured."""
        self._post("/_config/data", None, method="DELETE")

    def _post(self, path: str, body: dict | None, method: str = "POST") -> None:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        stop_group(self.process, grace=5)
        self.process = None

    def log_tail(self, size: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-size:] if self.log_path.exists() else ""
