"""How long the archive pipeline takes as `make run` deploys it, and what it costs.

    .venv/bin/python -m bench.pipeline_lag [--slices 300]

STOWs a CT series (30 instances per request) into a fresh CloudPACS (web, gateway, Celery
worker with beat, its embedded broker unless CELERY_BROKER_URL is set; PostgreSQL when
DATABASE_URL is set) and reports the time from the first request until every instance is
verified in both regions, and the worker's CPU-seconds per instance over that time.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudpacs.settings")

from bench import dicomweb, servers  # noqa: E402
from tests.dicom_factory import make_ct_series, to_bytes  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    parts = [to_bytes(ds) for ds in make_ct_series(args.slices, 512, 512, seed=3)]
    with servers.cloudpacs() as cloudpacs:
        worker = int(subprocess.check_output(["pgrep", "-f", "celery -A cloudpacs worker"]).split()[0])
        time.sleep(5)  # the worker's start-up is not the pipeline's cost
        before = cpu_seconds(worker)
        session = requests.Session()
        started = time.perf_counter()
        for i in range(0, len(parts), 30):
            dicomweb.stow(session, cloudpacs.base_url, parts[i:i + 30], cloudpacs.headers)
        acknowledged = time.perf_counter() - started
        while True:
            status = json.loads(subprocess.run(
                [sys.executable, str(servers.ROOT / "manage.py"), "storage_status", "bench", "--json"],
                env=cloudpacs.env, capture_output=True, text=True, check=True).stdout)
            if status["waiting"] == 0:
                break
            time.sleep(0.5)
        verified = time.perf_counter() - started
        cpu = cpu_seconds(worker) - before
    print(json.dumps({"instances": len(parts), "acknowledged_s": round(acknowledged, 1),
                      "verified_in_both_regions_s": round(verified, 1),
                      "worker_cpu_ms_per_instance": round(cpu / len(parts) * 1000)}))


if __name__ == "__main__":
    main()
