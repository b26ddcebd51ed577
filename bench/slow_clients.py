"""Availability under slow uploads: CloudPACS as `make run` starts it (web server, worker
with beat, gateway), 32 STOW-RS uploads held open one byte every 2 s (four tokens from four
loopback addresses, so all fit under STOW_MAX_CONCURRENT), and the latency of everyone
else's requests meanwhile, beside the same requests with no slow uploads.

    .venv/bin/python -m bench.slow_clients [--slow 32] [--rounds 40]
"""

import argparse
import subprocess
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import servers  # noqa: E402
from bench.data import ct_series_bytes  # noqa: E402
from tests.slow_clients import SlowUploads, latencies, summary  # noqa: E402


def _tokens(env: dict, count: int) -> list[str]:
    manage = [sys.executable, str(ROOT / "manage.py")]
    return [subprocess.run([*manage, "create_api_token", "bench", "--name", f"slow {i}", "--scopes", "upload"],
                           env=env, cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()[-1]
            for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slow", type=int, default=32, help="slow uploads held open")
    parser.add_argument("--rounds", type=int, default=40, help="times each probe is measured")
    args = parser.parse_args()
    with servers.cloudpacs() as server:
        web = server.base_url.split("/t/")[0]
        study, series, parts = ct_series_bytes(2)
        stored = requests.post(f"{server.base_url}/studies", timeout=60, headers={
            **server.headers, "Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
            data=b"".join(b"--b\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n" for p in parts) + b"--b--\r\n")
        stored.raise_for_status()
        auth = server.headers
        probes = {
            "/healthz": lambda: requests.get(f"{web}/healthz", timeout=5),
            "/readyz": lambda: requests.get(f"{web}/readyz", timeout=5),
            "login page": lambda: requests.get(f"{web}/login/", timeout=5),
            "QIDO-RS study search": lambda: requests.get(f"{server.base_url}/studies", headers=auth, timeout=5),
            "WADO-RS series metadata": lambda: requests.get(
                f"{server.base_url}/studies/{study}/series/{series}/metadata", headers=auth, timeout=5),
        }
        quiet = latencies(probes, args.rounds)
        port = int(web.rsplit(":", 1)[1])
        clients = [(f"127.0.0.{2 + i}", token) for i, token in enumerate(_tokens(server.env, 4))]
        with SlowUploads("127.0.0.1", port, "/t/bench/dicomweb/studies", clients, count=args.slow) as slow:
            loaded = latencies(probes, args.rounds)
            held = slow.still_open()
    print(f"{held} of {args.slow} slow uploads still open at the end (the rest were refused or dropped)")
    print(f"| request | alone | while {args.slow} slow uploads are held |")
    print("|---|---|---|")
    for name in probes:
        print(f"| {name} | {summary(quiet[name])} | {summary(loaded[name])} |")


if __name__ == "__main__":
    main()
