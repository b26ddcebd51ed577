#!/usr/bin/env python3
"""Install the prebuilt OHIF viewer (npm `@ohif/app`) that CloudPACS serves same-origin.

The version and the tarball's sha512 are pinned in archive/viewer/ohif.lock.json; `npm pack`
fetches the tarball from the npm registry (so npm's registry and proxy settings apply),
the bytes are checked against the pin, and only `dist/` is kept, without what the product
never loads: the ONNX runtime and its WebAssembly for OHIF's optional AI segmentation
models (136 MB) and source maps. The build loads its chunks, fonts and codecs from the
site's root ("/", fixed when OHIF was built); CloudPACS serves them under /ohif/<version>/
(archive/viewer/install.py), so the public path of the app bundle (checked to be there)
and of each worker bundle, and the font URLs of the stylesheets, are rewritten to it. Text files are gzipped
beside themselves, so WhiteNoise sends the compressed copy to browsers that accept it.

Usage: install_viewer.py [--tarball FILE] [DEST]   (default var/ohif; installs into
DEST/<version>/; --tarball takes a tarball fetched already, e.g. by a Docker build stage)
Exit 0 when installed (or already there), 2 when npm is missing, 1 on any other failure.
"""

import base64
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "archive" / "viewer" / "ohif.lock.json"
FILES_URL = "/ohif/{version}/"  # the same as archive.viewer.install.files_url()
PUBLIC_PATH = b'__webpack_require__.p = "/";'
SKIP_DIRS = ("ort/",)  # ONNX runtime for the optional AI models
# The demo deployment's files: its configuration (a third-party DICOMweb server; ours is made
# per request), Netlify's rules, and a service worker that loads Workbox from Google's CDN.
SKIP_FILES = {"app-config.js", "_headers", "_redirects", "serve.json", "google.js", "sw.js",
              "init-service-worker.js", "silent-refresh.html", "oidc-client.min.js"}
SKIP_SUFFIXES = (".map",)
COMPRESS = (".js", ".css", ".json", ".wasm", ".html", ".svg", ".txt", ".xml")
MARKER = ".installed"


def _kept(name: str) -> str | None:
    """The path under dist/ to install for a tarball member, or None to leave it out."""
    if not name.startswith("package/dist/"):
        return None
    rel = name[len("package/dist/"):]
    if not rel or rel.startswith(SKIP_DIRS) or rel.endswith(SKIP_SUFFIXES) or rel in SKIP_FILES:
        return None
    parts = Path(rel).parts
    if rel.startswith("/") or ".." in parts:
        raise SystemExit(f"refusing a path outside the package: {name}")
    return rel


def _rebase(path: Path, prefix: bytes) -> None:
    """Point the build's root-relative URLs at `prefix`."""
    if path.suffix == ".js":  # the app and each web worker bundle set their own
        data = path.read_bytes()
        if path.name.startswith("app.bundle.") and data.count(PUBLIC_PATH) != 1:
            raise SystemExit(f"{path.name}: expected the webpack public path once; OHIF's build changed")
        if PUBLIC_PATH in data:
            path.write_bytes(data.replace(PUBLIC_PATH, b'__webpack_require__.p = "' + prefix + b'";'))
    elif path.suffix == ".css":
        path.write_bytes(path.read_bytes().replace(b"url(/", b"url(" + prefix))


def _integrity(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def install(dest_root: Path, tarball: Path | None = None) -> Path:
    lock = json.loads(LOCK.read_text())
    dest = dest_root / lock["version"]
    if (dest / MARKER).exists():
        return dest
    dest_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_root, prefix=".download-") as tmp:
        _unpack(tarball or _fetch(lock, Path(tmp)), lock, dest, Path(tmp))
    print(f"Viewer installed in {dest}", flush=True)
    return dest


def _fetch(lock: dict, tmp: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        print("The browser viewer needs npm to install the prebuilt OHIF viewer from the npm "
              "registry (Debian: apt-get install npm). CloudPACS runs without it; its viewer page "
              "says it is not installed.", file=sys.stderr)
        raise SystemExit(2)
    spec = f"{lock['package']}@{lock['version']}"
    print(f"Installing the viewer ({spec}, about 50 MB from the npm registry)...", flush=True)
    out = subprocess.run([npm, "pack", spec, "--pack-destination", str(tmp), "--silent", "--json"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"npm pack {spec} failed: {out.stderr.strip()[-500:]}")
    return tmp / json.loads(out.stdout)[0]["filename"].replace("@", "").replace("/", "-")


def _unpack(tgz: Path, lock: dict, dest: Path, tmp: Path) -> None:
    spec = f"{lock['package']}@{lock['version']}"
    got = _integrity(tgz)
    if got != lock["integrity"]:
        raise SystemExit(f"{spec}: the tarball's sha512 is {got}, not the pinned {lock['integrity']}")
    staging = tmp / "dist"
    with tarfile.open(tgz) as tar:
        for member in tar:
            rel = _kept(member.name)
            if rel is None or not member.isfile():
                continue
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            _rebase(target, FILES_URL.format(version=lock["version"]).encode())
            if target.suffix in COMPRESS and member.size > 1024:
                with target.open("rb") as src, gzip.open(f"{target}.gz", "wb", compresslevel=9) as dst:
                    shutil.copyfileobj(src, dst)
    (staging / MARKER).write_text(spec + "\n")
    if dest.exists():
        shutil.rmtree(dest)  # a half-installed copy from an interrupted run
    staging.rename(dest)


if __name__ == "__main__":
    args = sys.argv[1:]
    given = None
    if args[:1] == ["--tarball"]:
        given, args = Path(args[1]), args[2:]
    install(Path(args[0]) if args else ROOT / "var" / "ohif", given)
