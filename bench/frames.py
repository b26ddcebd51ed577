"""A viewer's frame requests without the viewer: every frame of a CT series fetched six at a
time, as OHIF fetches them, from CloudPACS (a clinic member's session, as the viewer has)
and from Orthanc 1.10's DICOMweb with its default HTTP compression. Both are asked with the
Accept and Accept-Encoding Chromium sends. Reports frames/s and each server's CPU per frame
(its whole process tree), which the viewer bench cannot tell apart from Chromium's own
decoding on the same two cores.

    .venv/bin/python -m bench.frames [--rounds 5] [--slices 300] [--passes 3]

Fresh servers each round, alternating which goes first; each round reads every frame
`--passes` times after one untimed pass, and its figure is the median pass.
"""

import argparse
import io
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudpacs.settings")

import django  # noqa: E402

django.setup()

import pydicom  # noqa: E402
import requests  # noqa: E402

from bench import data, netns, report, servers, workloads  # noqa: E402
from bench.worklist import ADD_READER, member_session  # noqa: E402

PARALLEL = 6  # OHIF's default number of concurrent requests
HEADERS = {"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*",
           "Accept-Encoding": "gzip, deflate, br, zstd"}


def read_frames(server, urls: list[str], cookies, passes: int) -> dict:
    sessions = [requests.Session() for _ in range(PARALLEL)]
    for session in sessions:
        session.cookies.update(cookies)

    def get(n: int) -> int:
        # The body as sent, not decoded: the client's core is not this bench's subject.
        with sessions[n % PARALLEL].get(urls[n], headers=HEADERS, timeout=60, stream=True) as response:
            if response.status_code != 200:
                raise RuntimeError(f"frame request answered {response.status_code}")
            return len(response.raw.read(decode_content=False))

    def one_pass() -> tuple[float, float, int]:
        cpu_before, started = server.tree.cpu_seconds(), time.perf_counter()
        with ThreadPoolExecutor(PARALLEL) as pool:
            sizes = list(pool.map(get, range(len(urls))))
        seconds = time.perf_counter() - started
        cpu = sum(server.tree.cpu_seconds().values()) - sum(cpu_before.values())
        return seconds, cpu, sum(sizes)

    one_pass()  # untimed: first-use imports, connections, the page cache
    timed = sorted((one_pass() for _ in range(passes)), key=lambda p: p[0])
    seconds, cpu, size = timed[len(timed) // 2]
    return {"frames_per_s": len(urls) / seconds, "cpu_ms_per_frame": cpu / len(urls) * 1000,
            "mb_sent": size / 1e6}


def frame_urls(root: str, study_uid: str, series_uid: str, parts: list[bytes]) -> list[str]:
    sops = [pydicom.dcmread(io.BytesIO(p), stop_before_pixels=True).SOPInstanceUID for p in parts]
    return [f"{root}/studies/{study_uid}/series/{series_uid}/instances/{sop}/frames/1" for sop in sops]


def run_cloudpacs(study_uid, series_uid, parts, passes):
    with servers.cloudpacs() as server:
        workloads.stow_kept_alive(server, parts, 30)
        server.wait_archived(len(parts), timeout=600)
        subprocess.run([sys.executable, "manage.py", "shell", "-c", ADD_READER], env=server.env,
                       cwd=servers.ROOT, check=True, capture_output=True)
        cookies = member_session(server.base_url.split("/t/")[0]).cookies
        return read_frames(server, frame_urls(server.base_url, study_uid, series_uid, parts), cookies, passes)


def run_orthanc(study_uid, series_uid, parts, passes):
    with servers.orthanc(http_compression=True) as server:
        workloads.stow_kept_alive(server, parts, 30)
        return read_frames(server, frame_urls(server.base_url, study_uid, series_uid, parts), {}, passes)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    netns.run_confined("bench.frames")
    study_uid, series_uid, parts = data.ct_series_bytes(args.slices)
    results = {"CloudPACS": [], "Orthanc": []}
    runners = {"CloudPACS": run_cloudpacs, "Orthanc": run_orthanc}
    for round_ in range(args.rounds):
        for name in (["CloudPACS", "Orthanc"] if round_ % 2 == 0 else ["Orthanc", "CloudPACS"]):
            result = runners[name](study_uid, series_uid, parts, args.passes)
            results[name].append(result)
            print(report.round_line("frames", round_, args.rounds, name, result), flush=True)
    title = f"{args.slices} frames of a 512x512 CT, {PARALLEL} at a time, {args.passes} passes per round"
    print("\n" + report.markdown_table({"frames": {"title": title, "rows": report.summarise(results)}}))


if __name__ == "__main__":
    main()
