"""Where the installed OHIF viewer is (scripts/install_viewer.py puts it there) and at
which URL its files are served. The version is part of the URL, so every file can be
cached for a year and a new version is never mixed with the old one."""

import json
from functools import cache
from pathlib import Path

from django.conf import settings

LOCK = Path(__file__).resolve().parent / "ohif.lock.json"
MARKER = ".installed"


@cache
def version() -> str:
    return json.loads(LOCK.read_text())["version"]


def viewer_dir() -> Path:
    return Path(settings.VIEWER_DIR) / version()


def installed() -> bool:
    return (viewer_dir() / MARKER).exists()


def files_url() -> str:
    """URL prefix of the viewer's static files, with leading and trailing slash."""
    return f"/ohif/{version()}/"
