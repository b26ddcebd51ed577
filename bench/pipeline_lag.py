"""How long the archive pipeline takes as `make run` deploys it, and what it costs.

    .venv/bin/python -m bench.pipeline_lag [--slices 300]

STOWs a CT series (30 instances per request) into a fresh CloudPACS (web, gateway, Celery
worker with beat, its embedded broker unless CELERY_BROKER_URL is set; PostgreSQL when
DATABASE_URL is set) and reports the time from the first request until every instance is
verified in both regions, and the CPU-seconds per instance of each process tree over that
time (the worker's is the pipeline's cost).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudpacs.settings")

from bench import servers, workloads  # noqa: E402
from bench.data import ct_series_bytes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    parts = ct_series_bytes(args.slices, seed=3)[2]
    with servers.cloudpacs() as cloudpacs:
        time.sleep(5)  # the processes' start-up is not the pipeline's cost
        result = workloads.measure_ingest(
            cloudpacs, lambda s: workloads.stow_kept_alive(s, parts, workloads.CT_BATCH), len(parts))
    print(json.dumps({"instances": len(parts), "acknowledged_s": round(result["acknowledged_s"], 1),
                      "verified_in_both_regions_s": round(result["done_s"], 1),
                      **{key: round(value) for key, value in result.items() if key.startswith("cpu_ms")}}))


if __name__ == "__main__":
    main()
