"""The bench's figures: one line per round as it goes, then per measure the median and
the spread (min–max) of each server, and the ratio CloudPACS/Orthanc of the medians."""

import re
import statistics

SERVERS = ("CloudPACS", "Orthanc")
HIGHER, LOWER, NONE = "higher", "lower", ""

# key pattern -> (label, which is better). `{n}` is a number of studies from the key.
MEASURES = [
    (r"acknowledged_per_s", "instances/s until acknowledged", HIGHER),
    (r"acknowledged_s", "s until acknowledged", LOWER),
    (r"done_s", "s until every instance is verified in both regions (Orthanc: acknowledged, "
                "it has no second region)", LOWER),
    (r"cpu_ms_per_instance", "CPU ms per instance, whole process tree, until done", LOWER),
    (r"cpu_ms_per_instance_web", "… of which web (gunicorn, its workers, their parse processes)", LOWER),
    (r"cpu_ms_per_instance_worker", "… of which worker (Celery with beat)", LOWER),
    (r"cpu_ms_per_instance_gateway", "… of which DICOM gateway", LOWER),
    (r"infrastructure_cpu_ms_per_instance_redis", "Redis broker CPU ms per instance (not in the tree's "
                                                  "total)", LOWER),
    (r"peak_memory_mb", "peak memory, sum of RSS over the process tree, MB", LOWER),
    (r"peak_pss_mb", "… the same as PSS (pages shared between processes counted once), MB", LOWER),
    (r"requests_mb_per_s", "MB/s read by requests (Python)", HIGHER),
    (r"curl_mb_per_s", "MB/s read by curl", HIGHER),
    (r"load_(\d+)_per_s", "studies/s loading up to {n} (bodies of 100, kept-alive)", HIGHER),
    (r"p50_ms_(\d+)", "p50 ms with {n} studies", LOWER),
    (r"p95_ms_(\d+)", "p95 ms with {n} studies", LOWER),
    (r"backlog_(\d+)", "instances not yet verified in both regions when searched at {n}", NONE),
    (r"frames_per_s", "frames/s", HIGHER),
    (r"cpu_ms_per_frame", "server CPU ms per frame, whole process tree", LOWER),
    (r"mb_sent", "MB sent (bodies as sent, compressed)", LOWER),
]
HIDDEN = {"instances", "mb", "done_per_s", "cpu_ms_per_instance_orthanc", "failed", "log_tail"}


def describe(key: str) -> tuple[str, str] | None:
    if key in HIDDEN:
        return None
    for pattern, label, better in MEASURES:
        match = re.fullmatch(pattern, key)
        if match:
            return label.format(n=f"{int(match.group(1)):,}" if match.groups() else ""), better
    return key, NONE


def fmt(value: float) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def round_line(workload: str, round_no: int, rounds: int, server: str, result: dict) -> str:
    if "failed" in result:
        return f"[{workload}] round {round_no + 1}/{rounds} {server}: FAILED {result['failed']}"
    figures = ", ".join(f"{key} {fmt(value)}" for key, value in result.items() if describe(key))
    return f"[{workload}] round {round_no + 1}/{rounds} {server}: {figures}"


def summarise(runs: dict[str, list[dict]]) -> list[dict]:
    """Per measure: each server's median, min, max and every round's figure (failed rounds
    have none: they are counted in a row of their own)."""
    keys = list(dict.fromkeys(key for name in SERVERS for run in runs.get(name, []) for key in run
                              if key not in HIDDEN))
    rows = []
    failed = {name: sum("failed" in run for run in runs.get(name, [])) for name in SERVERS}
    if any(failed.values()):
        rows.append({"key": "failed", "label": "rounds that failed (not in the figures below)", "better": NONE,
                     **{name: {"median": n, "min": n, "max": n, "rounds": [n]} for name, n in failed.items()}})
    for key in keys:
        described = describe(key)
        if not described:
            continue
        row = {"key": key, "label": described[0], "better": described[1]}
        for name in SERVERS:
            values = [run[key] for run in runs.get(name, []) if key in run]
            if values:
                median = statistics.median(values)
                if all(isinstance(v, int) for v in values) and float(median).is_integer():
                    median = int(median)  # a count stays a count
                row[name] = {"median": median, "min": min(values), "max": max(values), "rounds": values}
        rows.append(row)
    return rows


def _cell(figures: dict | None) -> str:
    if not figures:
        return "—"
    if len(figures["rounds"]) == 1:
        return fmt(figures["median"])
    return f"{fmt(figures['median'])} ({fmt(figures['min'])}–{fmt(figures['max'])})"


def _ratio(row: dict) -> str:
    c, o = row.get("CloudPACS"), row.get("Orthanc")
    if not (c and o and row["better"]) or not o["median"]:
        return "—"
    return f"{c['median'] / o['median']:.2f}"


def markdown_table(summaries: dict[str, dict]) -> str:
    """One table for every workload: a heading row per workload, a row per measure."""
    lines = ["| measure | CloudPACS, median (min–max) | Orthanc 1.10, median (min–max) | "
             "ratio CloudPACS/Orthanc | better |", "|---|---:|---:|---:|---|"]
    for summary in summaries.values():
        lines.append(f"| **{summary['title']}** | | | | |")
        for row in summary["rows"]:
            lines.append(f"| {row['label']} | {_cell(row.get('CloudPACS'))} | {_cell(row.get('Orthanc'))} | "
                         f"{_ratio(row)} | {row['better'] or ''} |")
    return "\n".join(lines)


def failures(all_runs: dict[str, dict[str, list[dict]]]) -> str:
    """A line per failed round, for under the table."""
    lines = [f"- {workload}, round {round_no + 1}, {name}: {run['failed']}"
             for workload, runs in all_runs.items() for name in SERVERS
             for round_no, run in enumerate(runs.get(name, [])) if "failed" in run]
    return "Failed rounds:\n" + "\n".join(lines) if lines else ""


def method(setup: dict) -> str:
    """How the figures were measured, to go with the table."""
    return "\n".join([
        f"Measured on {setup['date']} with `{setup['command']}`, on {setup['machine']}, in a network namespace "
        "with only loopback up (bench/netns.py; Orthanc 1.10 has no bind address).",
        f"CloudPACS runs as `make run` starts it: gunicorn from gunicorn.conf.py ({setup['web_workers']} uvicorn "
        "workers), the Celery worker with beat (`--pool threads --concurrency=4 --beat`) and the DICOM gateway, "
        f"on {setup['database']} with {setup['broker']}; both storage regions are local folders. Orthanc runs "
        "with its DICOMweb plugin (Debian packages `orthanc orthanc-dicomweb`).",
        f"Every workload runs {setup['rounds']} rounds; each round starts both servers fresh (new scratch "
        "folder; for CloudPACS a new database, a copy of one migrated once, for Orthanc a new storage "
        "folder), one after the other, alternating which goes first. A fresh server first gets untimed "
        "requests (four 1-instance STOW bodies on new connections, one C-STORE; CloudPACS until they are "
        "archived).",
        "An ingest is timed from its first request until acknowledged (the client's last success) and until "
        "done: CloudPACS is done when every instance is verified in both regions (polled in its database "
        "every 0.25 s); Orthanc, which has no second region, when it has acknowledged. CPU is utime + stime "
        "(+ reaped children's) from /proc of every process descended from the processes the server was "
        "started as, from the first request until done; memory is the peak of the RSS summed over that tree, "
        "sampled every 0.2 s (pages shared between processes count once per process; PSS, which counts them "
        "once, is read whenever that sum has grown 2%). The database "
        "server's CPU is not counted; a Redis broker's is shown apart.",
        "STOW-RS over new connections is sent by curl, one process per body"
        + (" as curl sends it by default, `Expect: 100-continue` first (Orthanc 1.10 never answers it: "
           "curl waits a second per body there)." if setup["curl_expect_100"] else
           ", without curl's `Expect: 100-continue` (Orthanc 1.10 never answers it, and curl would wait a "
           "second per body); kept-alive STOW-RS streams each body chunked from one requests session."),
        "WADO-RS reads the series after it is stored and (CloudPACS) archived. QIDO-RS is measured right after "
        "loading each number of 1-instance studies, without waiting for CloudPACS's archive pipeline (how many "
        "instances it still had to archive then is in the table).",
    ])
