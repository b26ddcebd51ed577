"""Durable storage under load: CloudPACS with two SeaweedFS regions and a Celery worker on
Redis, beside a plain boto3 upload of the same bytes to the same two SeaweedFS servers.

    .venv/bin/python -m bench.archive [--rounds 3] [--slices 300] [--batch 10]

Measures: end-to-end archive throughput (encrypt + upload + verify in both regions) in MB/s
against the plain-upload limit; replication lag (ingest acknowledged -> secondary copy
verified) p50/p95 under steady STOW ingest; WADO-RS series retrieval MB/s with tier 1
evicted (read from the primary region and decrypted).
"""

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dicomweb, servers  # noqa: E402
from bench.data import ct_series_bytes  # noqa: E402
from tests.servers import CeleryWorker, SeaweedServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LAGS_SQL = """
import json
from archive.models import Instance
from archive.storage.models import InstanceCopy
rows = InstanceCopy.unscoped.filter(region="secondary", state="verified").values_list("verified_at", "instance__created_at")
print(json.dumps([(v - c).total_seconds() for v, c in rows]))
"""


def manage(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout


def plain_upload_mb_s(regions: list[SeaweedServer], parts: list[bytes], prefix: str = "plain") -> float:
    """The limit: the same bytes put to both regions with boto3, two threads per region."""
    clients = [r.client() for r in regions]
    started = time.perf_counter()

    def put(args):
        i, part = args
        for region, client in zip(regions, clients, strict=True):
            client.put_object(Bucket=region.bucket, Key=f"{prefix}/{i}", Body=part)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(put, enumerate(parts)))
    return sum(map(len, parts)) / (time.perf_counter() - started) / 1e6


def worker_alive(worker: CeleryWorker):
    def check() -> None:
        if worker.process is not None and worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited: {worker.log_path.read_text()[-2000:]}")
    return check


def one_round(args) -> dict:
    """Fresh SeaweedFS servers and a fresh CloudPACS: the limit before, ingest with the
    pipeline working, the pipeline alone, the limit after."""
    study, series, parts = ct_series_bytes(args.slices)
    total_mb = sum(map(len, parts)) / 1e6
    scratch = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    regions = [SeaweedServer(scratch / name, f"bench-{name}") for name in ("primary", "secondary")]
    try:
        for region in regions:
            region.start_ready()
        # A fresh SeaweedFS grows its volumes on the first writes: warm both up, so that
        # neither the limit nor the pipeline pays for it. The limit is measured before and
        # after the pipeline (it varied by two times between runs) and their mean is used.
        plain_upload_mb_s(regions, parts[:60], prefix="warm-up")
        limit_before = plain_upload_mb_s(regions, parts, prefix="plain-before")
        env = {**regions[0].env("primary"), **regions[1].env("secondary"),
               "CLOUDPACS_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
               "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/7"),
               "CELERY_TASK_DEFAULT_QUEUE": f"bench-{uuid.uuid4().hex[:8]}"}
        with servers.cloudpacs(extra_env=env, worker=False) as server:
            # Storage steps wait on the network: a thread pool overlaps them (as deployed).
            worker = CeleryWorker(server.env, env["CELERY_TASK_DEFAULT_QUEUE"], scratch,
                                  concurrency=args.concurrency, pool=args.pool)
            worker.start()
            try:
                session = requests.Session()
                started = time.perf_counter()
                for i in range(0, len(parts), args.batch):
                    dicomweb.stow(session, server.base_url, parts[i:i + args.batch], server.headers)
                ingest_s = time.perf_counter() - started
                # Polled with one query on one connection: a `manage.py storage_status` process
                # every half second (as this bench did before) took most of a core from the
                # worker on this two-core machine.
                server.progress.wait_all_verified(len(parts), check=worker_alive(worker))
                archive_s = time.perf_counter() - started
                lags = sorted(json.loads(manage(server.env, "shell", "-c", LAGS_SQL).strip().splitlines()[-1]))
                shutil.rmtree(server.workdir / "tier1")
                wado_started = time.perf_counter()
                size = dicomweb.wado_series_bytes(session, server.base_url, study, series, server.headers)
                wado_region = size / (time.perf_counter() - wado_started) / 1e6
            finally:
                worker.stop()
            # The pipeline alone: a second series taken in while no worker runs (its archive
            # work waits in the queue), then a fresh worker archives it; timed from the
            # worker's "ready" to both regions verified. Ingest (and its encryption into
            # tier 1) is not in this figure; it is in the one above.
            _, _, second = ct_series_bytes(args.slices, seed=2)
            for i in range(0, len(second), args.batch):
                dicomweb.stow(session, server.base_url, second[i:i + args.batch], server.headers)
            worker = CeleryWorker(server.env, env["CELERY_TASK_DEFAULT_QUEUE"], scratch,
                                  concurrency=args.concurrency, pool=args.pool)
            worker.start()
            try:
                started = time.perf_counter()
                server.progress.wait_all_verified(len(parts) + len(second), check=worker_alive(worker))
                pipeline_s = time.perf_counter() - started
            finally:
                worker.stop()
            pipeline_mb_s = sum(map(len, second)) / pipeline_s / 1e6
        limit_after = plain_upload_mb_s(regions, parts, prefix="plain-after")
        limit = (limit_before + limit_after) / 2
    finally:
        for region in regions:
            region.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "study_mb": total_mb, "stow_mb_s": total_mb / ingest_s,
        "archive_mb_s": total_mb / archive_s, "pipeline_alone_mb_s": pipeline_mb_s,
        "plain_boto3_both_regions_mb_s": limit,
        "plain_before_mb_s": limit_before, "plain_after_mb_s": limit_after,
        "archive_ratio": total_mb / archive_s / limit, "pipeline_alone_ratio": pipeline_mb_s / limit,
        "lag_p50_s": statistics.median(lags), "lag_p95_s": lags[int(len(lags) * 0.95) - 1],
        "wado_from_region_mb_s": wado_region,
    }


def spread(rounds: list[dict], name: str, fmt: str = "{:.1f}") -> str:
    """Median (min-max) of one figure over the rounds."""
    values = [r[name] for r in rounds]
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="each with fresh servers")
    parser.add_argument("--pool", default="threads", help="Celery pool of the worker")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    rounds = []
    for number in range(1, args.rounds + 1):
        rounds.append(one_round(args))
        r = rounds[-1]
        print(f"round {number}: archive {r['archive_mb_s']:.1f} MB/s, pipeline alone {r['pipeline_alone_mb_s']:.1f}, "
              f"limit {r['plain_boto3_both_regions_mb_s']:.1f} ({r['plain_before_mb_s']:.1f} before, "
              f"{r['plain_after_mb_s']:.1f} after): ratios {r['archive_ratio']:.2f} / "
              f"{r['pipeline_alone_ratio']:.2f}; lag p95 {r['lag_p95_s']:.1f} s", flush=True)
    print(f"\n{len(rounds)} rounds, median (min–max):")
    print("| measure | CloudPACS | limit | ratio |\n|---|---:|---:|---:|")
    limit = spread(rounds, "plain_boto3_both_regions_mb_s")
    print(f"| archive throughput, STOW start → both regions verified, MB/s | {spread(rounds, 'archive_mb_s')} | "
          f"{limit} | {spread(rounds, 'archive_ratio', '{:.2f}')} |")
    print(f"| archive pipeline alone (ingest done before), MB/s | {spread(rounds, 'pipeline_alone_mb_s')} | "
          f"{limit} | {spread(rounds, 'pipeline_alone_ratio', '{:.2f}')} |")
    print(f"| replication lag p50 / p95, s (acknowledged → secondary verified) | {spread(rounds, 'lag_p50_s')} / "
          f"{spread(rounds, 'lag_p95_s')} | p95 < 30 s | |")
    print(f"| WADO-RS series from the primary region (tier 1 evicted, decrypted), MB/s | "
          f"{spread(rounds, 'wado_from_region_mb_s', '{:.0f}')} | | |")
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / "archive.json").write_text(json.dumps(rounds, indent=2))


if __name__ == "__main__":
    main()
