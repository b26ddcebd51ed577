"""Stopping the web server stops everything it started: `make run`'s Ctrl-C and a
container stop send SIGTERM to gunicorn's master alone, and each worker's STOW-RS parse
process (and the fork server it comes from) must not outlive it."""

import signal
import subprocess

from django.conf import settings

from tests.servers import WebServer, wait_for


def _group_members(pgid: int) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "pgid=,pid=,cmd="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split()[0] == str(pgid)]


def test_sigterm_to_the_master_leaves_no_process_behind(tmp_path):
    server = WebServer({"CLOUDPACS_VAR_DIR": str(settings.VAR_DIR), "INGEST_TMP_DIR": str(tmp_path / "spool"),
                        "TIER1_PATH": str(tmp_path / "tier1")}, tmp_path)
    server.start()
    pgid = server.process.pid
    try:
        # The parse processes are started (post_worker_init warms them).
        assert any("forkserver" in line for line in _group_members(pgid))
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)
        wait_for(lambda: not _group_members(pgid), timeout=15, what="every process of the server to end")
    finally:
        server.stop()
        subprocess.run(["pkill", "-KILL", "-g", str(pgid)], check=False)
