"""A small local status page for the clinic: the queue (count, bytes, oldest, last error)
as HTML at / and as JSON at /status.json. It shows counts and times only, never patient
data, and listens on the clinic machine's loopback unless told otherwise."""

import html
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from edge.state import snapshot


def _when(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "never"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def render(status: dict) -> str:
    rows = [
        ("Waiting for the cloud", f"{status['queued']} instances, {_size(status['bytes'])}"),
        ("Oldest waiting since", _when(status["oldest_queued_at"])),
        ("Last sent", _when(status.get("last_sent_at"))),
        ("Last error", status.get("last_error") or "none"),
        ("Refused by the cloud (kept in the spool's rejected folder)", str(status["rejected"])),
        ("Received since the spool began", str(status.get("received") or 0)),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    healthy = status["queued"] == 0 or not status.get("last_error")
    return ("<!doctype html><html lang=en><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            "<meta http-equiv=refresh content=10><title>CloudPACS edge gateway</title>"
            "<style>body{font:16px system-ui,sans-serif;margin:1rem;max-width:40rem}"
            "th{text-align:left;padding:.3rem 1rem .3rem 0;font-weight:600}td{padding:.3rem 0}"
            ".ok{color:#0a6b2d}.warn{color:#9a4b00}</style>"
            f"<h1>CloudPACS edge gateway</h1><p class={'ok' if healthy else 'warn'}>"
            f"{'Everything received has been sent.' if status['queued'] == 0 else 'Sending to the cloud.' if healthy else 'Waiting to retry: see the last error.'}"
            f"</p><table>{body}</table></html>")


def start_status_page(spool_root: Path, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status = snapshot(spool_root)
            if self.path == "/status.json":
                payload, kind = json.dumps(status).encode(), "application/json"
            elif self.path == "/":
                payload, kind = render(status).encode(), "text/html; charset=utf-8"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="edge-status", daemon=True).start()
    return server
