"""The OHIF viewer on CloudPACS beside the same OHIF build on Orthanc's DICOMweb: time from
opening the viewer to the first image on screen, and to every slice of the series loaded,
in headless Chromium with a cold cache, fresh servers each round, alternating which goes
first.

    .venv/bin/python -m bench.viewer [--rounds 3] [--slices 300]

CloudPACS serves OHIF itself, as the product does (`make run`'s servers, a clinic member's
session). Orthanc has no viewer of its own here, so a small same-origin proxy (aiohttp, in
this process) serves the same OHIF files and configuration and forwards /dicom-web/ to it;
Orthanc runs with its default HTTP compression. A slice counts as loaded when its frame
request finished with 200; requests Chromium reports failed (ERR_ABORTED) are counted
apart. Prints every round and the medians with their spread.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudpacs.settings")

import django  # noqa: E402

django.setup()

from aiohttp import ClientSession, web  # noqa: E402

from archive.viewer import install, page  # noqa: E402
from bench import data, netns, servers, workloads  # noqa: E402
from bench.worklist import ADD_READER, PASSWORD, READER  # noqa: E402
from tests.servers import free_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# The viewport shows an image once its canvas is not one flat colour.
SHOWS_IMAGE = """() => {
  const c = document.querySelector('[data-viewportid] canvas.cornerstone-canvas');
  if (!c || !c.width) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let min = 255, max = 0;
  for (let i = 0; i < d.length; i += 4 * 97) { min = Math.min(min, d[i]); max = Math.max(max, d[i]); }
  return max - min > 40;
}"""


class OrthancViewerProxy:
    """OHIF's files and configuration, and Orthanc's DICOMweb, on one origin."""

    def __init__(self, orthanc_root: str):
        self.orthanc_root = orthanc_root.rstrip("/")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()

    async def _config(self, request):
        config = page.ohif_config(router_basename="/viewer", dicomweb_root=f"{self.base}/dicom-web",
                                  name="Orthanc", show_study_list=False)
        return web.Response(text=page.config_script(config, back_url="/", back_label="Orthanc"),
                            content_type="text/javascript")

    async def _index(self, request):
        return web.Response(text=page.index_html("/viewer/app-config.js"), content_type="text/html")

    async def _files(self, request):
        return web.FileResponse(install.viewer_dir() / request.match_info["tail"])

    async def _dicomweb(self, request):
        tail = request.match_info["tail"]
        if tail.endswith("/thumbnail"):
            # Orthanc's DICOMweb plugin (1.7) has no thumbnail resource; its rendered one is
            # the same server-made JPEG that OHIF's thumbnailDirect asks CloudPACS for.
            tail = tail.removesuffix("/thumbnail") + "/rendered"
        url = f"{self.orthanc_root}/{tail}"
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("accept", "accept-encoding")}
        async with self.client.get(url, params=request.query, headers=headers, auto_decompress=False) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items()
                if k.lower() in ("content-type", "content-encoding", "content-length")})
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(1 << 16):
                await response.write(chunk)
            await response.write_eof()
            return response

    def __enter__(self):
        def run():
            asyncio.set_event_loop(self.loop)
            app = web.Application()
            app.router.add_get("/viewer/app-config.js", self._config)
            app.router.add_get("/viewer/{tail:.*}", self._index)
            app.router.add_get(install.files_url() + "{tail:.*}", self._files)
            app.router.add_get("/dicom-web/{tail:.*}", self._dicomweb)
            self.runner = web.AppRunner(app, access_log=None)
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(self._start())
            self.ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self.ready.wait(30)
        return self

    async def _start(self):
        self.client = ClientSession()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def __exit__(self, *exc):
        async def stop():
            await self.client.close()
            await self.runner.cleanup()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def measure(browser, viewer_url: str, slices: int, login_url: str | None = None) -> dict:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    if login_url:  # a clinic member's session, as a radiologist has one
        tab.goto(login_url)
        tab.fill("input[name=email]", READER)
        tab.fill("input[name=password]", PASSWORD)
        with tab.expect_navigation():
            tab.click("main button[type=submit]")
    done, failed, sizes = {}, set(), {"frames": 0, "metadata": 0}
    started = time.perf_counter()

    def finished(request):
        if "/frames/" in request.url:
            response = request.response()
            if response and response.status == 200:
                done.setdefault(request.url, time.perf_counter() - started)

    tab.on("requestfinished", finished)
    tab.on("requestfailed", lambda r: "/frames/" in r.url and failed.add(r.url))
    tab.goto(viewer_url)
    tab.wait_for_function(SHOWS_IMAGE, polling=50, timeout=120_000)
    first = time.perf_counter() - started
    deadline = time.monotonic() + 180
    # Until every slice arrived, or every one arrived or was abandoned and stayed so a while
    # (an abandoned request may be sent again and then arrive).
    settled_at = None
    while len(done) < slices and time.monotonic() < deadline:
        tab.wait_for_timeout(200)
        answered = len(done) + len(failed - set(done))
        settled_at = (settled_at or time.monotonic()) if answered >= slices else None
        if settled_at and time.monotonic() - settled_at > 3:
            break
    all_loaded = max(done.values()) if len(done) >= slices else None
    for entry in tab.evaluate("() => performance.getEntriesByType('resource').map("
                              "e => [e.name, e.encodedBodySize])"):
        if "/frames/" in entry[0]:
            sizes["frames"] += entry[1]
        elif "/metadata" in entry[0]:
            sizes["metadata"] += entry[1]
    context.close()
    return {"first_image_s": first, "all_loaded_s": all_loaded, "frames_ok": len(done),
            "frames_aborted": len(failed - set(done)), "frames_mb": sizes["frames"] / 1e6,
            "metadata_kb": sizes["metadata"] / 1e3}


def run_cloudpacs(browser, study_uid, parts, slices):
    with servers.cloudpacs() as server:
        workloads.stow_kept_alive(server, parts, 30)
        subprocess.run([sys.executable, "manage.py", "shell", "-c", ADD_READER], env=server.env,
                       cwd=servers.ROOT, check=True, capture_output=True)
        origin = server.base_url.split("/t/")[0]
        return measure(browser, f"{origin}/t/bench/viewer/viewer?StudyInstanceUIDs={study_uid}", slices,
                       login_url=f"{origin}/login/")


def run_orthanc(browser, study_uid, parts, slices):
    with servers.orthanc(http_compression=True) as server:
        workloads.stow_kept_alive(server, parts, 30)
        with OrthancViewerProxy(server.base_url) as proxy:
            return measure(browser, f"{proxy.base}/viewer/viewer?StudyInstanceUIDs={study_uid}", slices)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    netns.run_confined("bench.viewer")
    if not install.installed():
        raise SystemExit("the OHIF viewer is not installed: make viewer")
    from playwright.sync_api import sync_playwright

    study_uid, _, parts = data.ct_series_bytes(args.slices)
    results = {"CloudPACS": [], "Orthanc": []}
    runners = {"CloudPACS": run_cloudpacs, "Orthanc": run_orthanc}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for round_ in range(args.rounds):
            order = ["CloudPACS", "Orthanc"] if round_ % 2 == 0 else ["Orthanc", "CloudPACS"]
            for name in order:
                result = runners[name](browser, study_uid, parts, args.slices)
                results[name].append(result)
                print(f"round {round_ + 1} {name:9s} " + " ".join(
                    f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()), flush=True)
        browser.close()
    print(f"\nmedians (min-max) over {args.rounds} rounds, {args.slices}-slice 512x512 CT:")
    for key in ("first_image_s", "all_loaded_s", "frames_ok", "frames_aborted", "frames_mb", "metadata_kb"):
        row = []
        for name in ("CloudPACS", "Orthanc"):
            values = [r[key] for r in results[name] if r[key] is not None]
            row.append(f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})" if values else "n/a")
        print(f"  {key:15s} CloudPACS {row[0]:24s} Orthanc {row[1]}")


if __name__ == "__main__":
    main()
