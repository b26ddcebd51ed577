"""CloudPACS beside Orthanc, each as it is run: the same workloads, the same data, fresh
servers every round, alternating which goes first.

    .venv/bin/python -m bench.run_all [--rounds 5] [--slices 300] [--single-studies 500]
                                      [--studies 10000] [--only stow-curl,qido,...]

Workloads (`--only`, comma-separated): stow-curl, stow-keepalive, single-100, single-1,
stow-curl-primary, single-1-primary (INGEST_DURABILITY=primary), cstore, cstore-4, cstore-each,
wado, qido. CloudPACS uses DATABASE_URL and CELERY_BROKER_URL when set.

Prints every round, then the medians and spreads as a Markdown table with how it was
measured (for the README), and writes bench/results/latest.json and latest.md.
"""

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudpacs.settings")

from bench import netns, report, servers, workloads  # noqa: E402
from bench.data import Corpus  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per workload (fresh servers each)")
    parser.add_argument("--slices", type=int, default=300, help="slices of the 512x512 CT series")
    parser.add_argument("--single-studies", type=int, default=500, help="1-instance studies per round")
    parser.add_argument("--studies", type=int, default=10000, help="studies loaded for QIDO (searched at "
                                                                    "1,000 and at this many)")
    parser.add_argument("--only", default="", help="comma-separated workloads to run (default: all)")
    parser.add_argument("--curl-expect-100", action="store_true",
                        help="let curl send `Expect: 100-continue` (Orthanc 1.10 never answers it, so each "
                             "body waits curl's one-second timeout there)")
    args = parser.parse_args()
    args.only = [key for key in args.only.split(",") if key]
    return args


def selected(args) -> list[workloads.Workload]:
    chosen = workloads.all_workloads(args)
    unknown = set(args.only) - {w.key for w in chosen}
    if unknown:
        raise SystemExit(f"unknown workload(s) {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(w.key for w in chosen)}")
    return [w for w in chosen if not args.only or w.key in args.only]


def start(name: str, template, env: dict):
    return servers.cloudpacs(template=template, extra_env=env) if name == "CloudPACS" else servers.orthanc()


def measure_round(workload, name: str, template, warm_up) -> dict:
    """One round on a fresh server. A round that fails (a process of the server died, a
    request was refused) is kept as `{"failed": why}` and the bench goes on: the failure
    is a finding too, and the other rounds are still worth having."""
    try:
        with start(name, template, workload.cloudpacs_env) as server:
            warm_up(server)
            return workload.measure(server)
    except servers.ServerDied as died:
        return {"failed": str(died), "log_tail": died.log_tail}
    except Exception as error:  # noqa: BLE001 - any failure of a round is reported, not fatal
        traceback.print_exc()
        return {"failed": f"{type(error).__name__}: {error}"}


def run_workload(workload, rounds: int, template, warm_up) -> dict[str, list[dict]]:
    """`rounds` rounds, each with both servers started fresh, one after the other (one
    server's leftover work never runs beside the other's), alternating which is first."""
    runs: dict[str, list[dict]] = {name: [] for name in report.SERVERS}
    for round_no in range(rounds):
        order = report.SERVERS if round_no % 2 == 0 else report.SERVERS[::-1]
        for name in order:
            result = measure_round(workload, name, template, warm_up)
            runs[name].append(result)
            print(report.round_line(workload.key, round_no, rounds, name, result), flush=True)
    return runs


def describe_setup(args) -> dict:
    database = os.environ.get("DATABASE_URL", "")
    broker = os.environ.get("CELERY_BROKER_URL", "")
    return {
        "date": time.strftime("%Y-%m-%d"),
        "command": "make bench" + (f" BENCH_ARGS='{shlex.join(sys.argv[1:])}'" if sys.argv[1:] else ""),
        "machine": f"{os.cpu_count()} cores ({_cpu_model()}), {platform.system()} {platform.release()}",
        "web_workers": int(os.environ.get("WEB_WORKERS", "2")),
        "database": "PostgreSQL" if database.startswith("postgres") else "SQLite (the embedded default)",
        "broker": ("a Redis broker (a fresh redis-server per round, in the namespace)" if broker.startswith("redis")
                   else "the embedded broker (kombu's filesystem transport)"),
        "rounds": args.rounds,
        "curl_expect_100": args.curl_expect_100,
        "orthanc": _orthanc_version(),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _orthanc_version() -> str:
    done = subprocess.run(["Orthanc", "--version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.stdout else "?"


def main() -> None:
    netns.run_confined("bench.run_all")
    args = parse_args()
    chosen = selected(args)
    corpus = Corpus(args.slices, args.single_studies, args.studies)
    setup = describe_setup(args)
    summaries, all_runs = {}, {}
    warm_up = workloads.WarmUp()
    try:
        with servers.cloudpacs_template() as template:
            for workload in chosen:
                print(f"== {workload.title}", flush=True)
                started = time.monotonic()
                workload.prepare(corpus)
                try:
                    all_runs[workload.key] = run_workload(workload, args.rounds, template, warm_up)
                finally:
                    workload.remove()
                print(f"== {workload.key}: {time.monotonic() - started:.0f} s", flush=True)
                summaries[workload.key] = {"title": workload.title,
                                           "rows": report.summarise(all_runs[workload.key])}
    finally:
        warm_up.remove()
    text = "\n\n".join(part for part in (report.markdown_table(summaries), report.failures(all_runs),
                                          report.method(setup)) if part)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(
        {"args": vars(args), "setup": setup, "runs": all_runs, "summaries": summaries}, indent=1))
    (RESULTS / "latest.md").write_text(text + "\n")
    print(f"\n{text}")


if __name__ == "__main__":
    main()
