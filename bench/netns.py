"""Run a benchmark in a network namespace of its own, with only loopback up.

Orthanc 1.10 has no bind address: started on the machine it would listen on every
interface. Inside the namespace every server of the run (Orthanc and CloudPACS alike)
is reachable from loopback only, and the namespace is removed when the run ends.
PostgreSQL is reached through its Unix socket, which a network namespace does not cut."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSIDE = "CLOUDPACS_BENCH_NETNS"
PG_SOCKET_DIR = "/var/run/postgresql"


def inside() -> bool:
    return bool(os.environ.get(INSIDE))


def postgres_host() -> str:
    return PG_SOCKET_DIR if inside() else "127.0.0.1"


def run_confined(module: str) -> None:
    """Re-run `python -m module` with the same arguments inside a fresh namespace, and exit
    with its status; returns at once when already inside one."""
    if inside():
        return
    if os.geteuid() != 0 or not shutil.which("ip"):
        raise SystemExit("this benchmark confines Orthanc in a network namespace: run it as root "
                         "with iproute2 installed")
    name = f"cloudpacs-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        env = {**os.environ, INSIDE: name}
        status = subprocess.run(["ip", "netns", "exec", name, sys.executable, "-m", module, *sys.argv[1:]],
                                env=env, cwd=ROOT).returncode
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
    sys.exit(status)
