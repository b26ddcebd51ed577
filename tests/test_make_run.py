"""`make run` (scripts/run_embedded.sh) as a user runs it in a terminal: it starts clean,
with no warning about a static-files folder nobody asked for, its archive worker runs at a
lower CPU priority than the servers that acknowledge, and Ctrl-C (SIGINT to the whole
foreground process group, as a terminal sends it) stops it without tracebacks."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.servers import free_port, stop_group, wait_for

REPO = Path(__file__).resolve().parent.parent


def test_make_run_starts_clean_and_stops_on_ctrl_c_without_tracebacks(tmp_path):
    log_path = tmp_path / "run.log"
    # Embedded defaults: SQLite and the file broker under its own var/, whatever CI has set.
    env = {k: v for k, v in os.environ.items() if k not in ("INGEST_TMP_DIR", "TIER1_PATH")}
    env.update(CLOUDPACS_VAR_DIR=str(tmp_path / "var"), DATABASE_URL="", CELERY_BROKER_URL="",
               PORT=str(free_port()), DICOM_PORT=str(free_port()), WORKER_NICE="10")
    base = os.getpriority(os.PRIO_PROCESS, 0)  # what the processes start with
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(REPO / "scripts" / "run_embedded.sh")], cwd=REPO, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Ready once every web worker has started (and warmed its parse process).
        wait_for(lambda: log_path.read_text().count("Application startup complete") >= 2
                 or process.poll() is not None, timeout=120, interval=0.5, what="make run to start")
        assert process.poll() is None, log_path.read_text()[-3000:]
        wait_for(lambda: " ready." in log_path.read_text(), timeout=60, interval=0.5, what="the worker")
        niceness = niceness_by_role(process.pid)
        assert niceness["celery"] == {min(19, base + 10)}, niceness  # every thread running by then
        assert niceness["gunicorn"] == {base} and niceness["dicom_gateway"] == {base}, niceness
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        process.wait(timeout=60)
    finally:
        stop_group(process, grace=5)
        subprocess.run(["pkill", "-KILL", "-g", str(process.pid)], check=False)
    output = log_path.read_text()
    assert "No directory at" not in output
    assert "Traceback" not in output, output[output.index("Traceback") - 200:][:3000]
    assert "CloudPACS is running at" in output


def niceness_by_role(group: int) -> dict[str, set[int]]:
    """The niceness of every thread of the process group's processes, by the word of their
    command line that says which role they are."""
    found: dict[str, set[int]] = {"celery": set(), "gunicorn": set(), "dicom_gateway": set()}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) != group:
                continue
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            role = next((r for r in found if r in command), None)
            if role is None:
                continue
            for tid in os.listdir(f"/proc/{pid}/task"):
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                found[role].add(int(stat.rsplit(")", 1)[1].split()[16]))  # field 19: nice
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone meanwhile
    return found


def test_the_worker_lowers_its_priority_once(tmp_path):
    """worker_init may reach the handler again (a worker made twice in one process): the
    threads end at the configured niceness, not lower each time."""
    code = ("import os, django; django.setup(); from cloudpacs.celery import _lower_priority as lower; "
            "base = os.getpriority(os.PRIO_PROCESS, 0); lower(); lower(); "
            "print(base, os.getpriority(os.PRIO_PROCESS, 0))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                           "DJANGO_SETTINGS_MODULE": "cloudpacs.settings",
                                           "CLOUDPACS_VAR_DIR": str(tmp_path), "WORKER_NICE": "5"})
    base, after = map(int, done.stdout.split())
    assert after == min(19, base + 5)
