"""CloudPACS beside Orthanc on the same data, in one run: STOW-RS ingest, WADO-RS series
retrieval, QIDO-RS latency with 10,000 studies, and peak memory while ingesting.

    .venv/bin/python -m bench.run_all [--slices 300] [--studies 10000] [--big-gb 1]

Prints a Markdown table (paste it into the README) and writes bench/results/latest.json.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudpacs.settings")

from bench import dicomweb, netns, servers  # noqa: E402
from tests.dicom_factory import make_ct_series, to_bytes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def ct_series_bytes(slices: int) -> tuple[str, str, list[bytes]]:
    datasets = make_ct_series(slices, 512, 512, patient_name="Bench^Patient", seed=1)
    return datasets[0].StudyInstanceUID, datasets[0].SeriesInstanceUID, [to_bytes(ds) for ds in datasets]


def bench_stow(server, parts: list[bytes], batch: int) -> dict:
    """One client, one kept-alive connection per server (`server.session`), as a sender
    that streams a study does: the warm-up and every round reach the same web worker."""
    session = server.session
    started = time.perf_counter()
    for i in range(0, len(parts), batch):
        dicomweb.stow(session, server.base_url, parts[i:i + batch], server.headers)
    elapsed = time.perf_counter() - started
    size = sum(map(len, parts))
    return {"instances_per_s": len(parts) / elapsed, "mb_per_s": size / elapsed / 1e6, "seconds": elapsed}


def bench_cstore(server, parts: list[bytes]) -> dict:
    """dcmtk's storescu sends the series over one association (TCP_NODELAY set for it)."""
    import shutil
    import subprocess
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="bench-cstore-"))
    try:
        files = []
        for i, part in enumerate(parts):
            path = folder / f"{i:05d}.dcm"
            path.write_bytes(part)
            files.append(str(path))
        started = time.perf_counter()
        subprocess.run(["storescu", "-aet", "STORESCU", "-aec", server.ae_title, "127.0.0.1",
                        str(server.dicom_port), *files], check=True, capture_output=True,
                       env={**os.environ, "TCP_NODELAY": "1"}, timeout=3600)
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"instances_per_s": len(parts) / elapsed, "mb_per_s": sum(map(len, parts)) / elapsed / 1e6}


def _median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda run: run["instances_per_s"])[len(runs) // 2]


def bench_wado(server, study: str, series: str, repeats: int = 3) -> dict:
    """The series read back by two kinds of client: requests (Python, as dicomweb-client
    reads) and curl."""
    session = requests.Session()
    rates, curl_rates = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        size = dicomweb.wado_series_bytes(session, server.base_url, study, series, server.headers)
        rates.append(size / (time.perf_counter() - started) / 1e6)
        curl_size, seconds = dicomweb.wado_series_curl(server.base_url, study, series, server.headers)
        curl_rates.append(curl_size / seconds / 1e6)
    return {"mb_per_s": statistics.median(rates), "curl_mb_per_s": statistics.median(curl_rates), "bytes": size}


def small_studies(count: int) -> list[bytes]:
    names = ["Smith^Anna", "Jones^Peter", "Müller^Jürgen", "Garcia^Maria", "Chen^Wei", "Brown^Tom"]
    out = []
    for i in range(count):
        ds = make_ct_series(1, 8, 8, patient_name=f"{names[i % len(names)]}{i}", patient_id=f"P{i:06d}",
                            accession=f"A{i:07d}", study_date=f"20{10 + i % 15:02d}{1 + i % 12:02d}{1 + i % 28:02d}",
                            seed=i)[0]
        out.append(to_bytes(ds))
    return out


def bench_qido(server, count: int, queries: int = 200) -> dict:
    session = requests.Session()
    cases = [
        lambda i: {"PatientID": f"P{(i * 37) % count:06d}"},
        lambda i: {"PatientName": f"{['smith', 'jones', 'chen'][i % 3]}*", "limit": "25"},
        lambda i: {"StudyDate": f"20{10 + i % 15:02d}0101-20{10 + i % 15:02d}0131", "limit": "25"},
        lambda i: {"AccessionNumber": f"A{(i * 91) % count:07d}"},
    ]
    timings = []
    for i in range(queries):
        ms, _ = dicomweb.qido_ms(session, server.base_url, cases[i % len(cases)](i), server.headers)
        timings.append(ms)
    timings.sort()
    return {"p50_ms": statistics.median(timings), "p95_ms": timings[int(len(timings) * 0.95)]}


def big_study_parts(total_bytes: int, instance_mb: int = 64):
    """A large study generated on the fly (multi-frame instances), never all in memory."""
    from tests.dicom_factory import make_ct_series

    study_uid = None
    n = max(1, total_bytes // (instance_mb << 20))
    frames = (instance_mb << 20) // (512 * 512 * 2)
    for i in range(n):
        ds = make_ct_series(1, 512, 512, study_uid=study_uid, seed=i)[0]
        study_uid = ds.StudyInstanceUID
        ds.NumberOfFrames = frames
        ds.PixelData = ds.PixelData * frames
        yield to_bytes(ds)


def _alternating(servers_by_name: dict, measure, rounds: int) -> dict[str, list[dict]]:
    """Run `measure(server, round_no)` for every server, `rounds` times, alternating which
    goes first, so that a slow spell of this shared machine falls on both alike."""
    runs: dict[str, list[dict]] = {name: [] for name in servers_by_name}
    names = list(servers_by_name)
    for round_no in range(rounds):
        for name in (names if round_no % 2 == 0 else names[::-1]):
            runs[name].append(measure(servers_by_name[name], round_no))
    return runs


def run(args) -> dict:
    study, series, parts = ct_series_bytes(args.slices)
    print(f"Generated a {args.slices}-slice 512x512 CT: {sum(map(len, parts)) / 1e6:.0f} MB", flush=True)
    small = small_studies(args.studies) if args.studies else []
    results: dict[str, dict] = {"CloudPACS": {}, "Orthanc": {}}
    # Both servers run side by side; every measurement alternates between them.
    with servers.cloudpacs() as cloudpacs, servers.orthanc() as orthanc:
        both = {"CloudPACS": cloudpacs, "Orthanc": orthanc}
        # One untimed 30-instance body to each first: connections, caches and first-use
        # imports are warm before anything is timed, on both servers alike.
        warmup = ct_series_bytes(30)[2]
        for server in both.values():
            bench_stow(server, warmup, args.batch)
        print("STOW-RS ...", flush=True)
        # The first series is the one WADO reads back; every later round sends a fresh
        # copy (new UIDs, so no re-send) to both servers.
        rounds = [parts] + [ct_series_bytes(args.slices)[2] for _ in range(args.repeats - 1)]
        stow = _alternating(both, lambda server, n: bench_stow(server, rounds[n], args.batch), len(rounds))
        for name, r in results.items():
            r["stow"] = _median_run(stow[name])
            r["stow_runs"] = [run["instances_per_s"] for run in stow[name]]
            r["stow_peak_rss_mb"] = both[name].peak_rss_mb()
        if args.cstore:
            print("C-STORE ...", flush=True)
            sent = [ct_series_bytes(args.slices)[2] for _ in range(args.repeats)]
            cstore = _alternating(both, lambda server, n: bench_cstore(server, sent[n]), args.repeats)
            for name, r in results.items():
                r["cstore"] = _median_run(cstore[name])
                r["cstore_runs"] = [run["instances_per_s"] for run in cstore[name]]
        print("WADO-RS ...", flush=True)
        wado = _alternating(both, lambda server, n: bench_wado(server, study, series, repeats=1), 3)
        for name, r in results.items():
            r["wado"] = {"mb_per_s": statistics.median(run["mb_per_s"] for run in wado[name]),
                         "bytes": wado[name][0]["bytes"]}
            r["wado_runs"] = [run["mb_per_s"] for run in wado[name]]
            r["wado_curl_runs"] = [run["curl_mb_per_s"] for run in wado[name]]
            r["wado"]["curl_mb_per_s"] = statistics.median(r["wado_curl_runs"])
        if small:
            for name, server in both.items():
                print(f"[{name}] indexing {len(small)} studies for QIDO ...", flush=True)
                bench_stow(server, small, 100)
            for name, server in both.items():
                results[name]["qido"] = bench_qido(server, len(small))
        if args.big_gb:
            print(f"[CloudPACS] ingesting a {args.big_gb} GB study ...", flush=True)
            results["CloudPACS"]["big"] = bench_stow(cloudpacs, list(big_study_parts(int(args.big_gb * 1e9))), 4)
            results["CloudPACS"]["big_peak_rss_mb"] = cloudpacs.peak_rss_mb()
    print(json.dumps(results, indent=1), flush=True)
    return results


def table(results: dict, args) -> str:
    c, o = results["CloudPACS"], results["Orthanc"]
    rows = [
        ("STOW-RS, 300x512² CT, instances/s", c["stow"]["instances_per_s"], o["stow"]["instances_per_s"]),
        ("STOW-RS MB/s", c["stow"]["mb_per_s"], o["stow"]["mb_per_s"]),
        ("WADO-RS series retrieve MB/s (requests)", c["wado"]["mb_per_s"], o["wado"]["mb_per_s"]),
        ("WADO-RS series retrieve MB/s (curl)", c["wado"]["curl_mb_per_s"], o["wado"]["curl_mb_per_s"]),
    ]
    if "cstore" in c:
        rows.append(("C-STORE, one association (storescu), instances/s", c["cstore"]["instances_per_s"],
                     o["cstore"]["instances_per_s"]))
    if "qido" in c:
        rows += [(f"QIDO-RS study search p50 ms ({args.studies} studies)", c["qido"]["p50_ms"], o["qido"]["p50_ms"]),
                 ("QIDO-RS p95 ms", c["qido"]["p95_ms"], o["qido"]["p95_ms"])]
    rows.append(("Peak RSS of server during STOW, MB", c["stow_peak_rss_mb"], o["stow_peak_rss_mb"]))
    lines = ["| measure | CloudPACS | Orthanc 1.10 | ratio |", "|---|---:|---:|---:|"]
    for label, cv, ov in rows:
        lines.append(f"| {label} | {cv:.1f} | {ov:.1f} | {cv / ov:.2f} |")
    if "big" in c:
        lines.append(f"| {args.big_gb} GB study: STOW MB/s / peak RSS MB (CloudPACS) | "
                     f"{c['big']['mb_per_s']:.0f} | | {c['big_peak_rss_mb']:.0f} MB |")
    return "\n".join(lines)


def main() -> None:
    netns.run_confined("bench.run_all")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--batch", type=int, default=30, help="instances per STOW request")
    parser.add_argument("--repeats", type=int, default=3, help="ingest runs per server (median reported)")
    parser.add_argument("--studies", type=int, default=10000, help="studies indexed for QIDO (0 skips)")
    parser.add_argument("--big-gb", type=float, default=0, help="also ingest a study this large (GB)")
    parser.add_argument("--no-cstore", dest="cstore", action="store_false", help="skip the C-STORE run")
    args = parser.parse_args()
    results = run(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print(table(results, args))


if __name__ == "__main__":
    main()
