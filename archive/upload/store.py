"""Where uploads in progress live: `UPLOAD_DIR/<tenant id>/<random id>.{bin,json}`.

No database rows: an upload is a data file (its size is the tus offset) and a small JSON
state file. Paths hold only the clinic's numeric id and random hex ids, never PHI. One
folder per clinic makes another clinic's upload id simply not found (404)."""

import fcntl
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
WRITE_CHUNK = 1 << 20


class OffsetMismatch(Exception):
    def __init__(self, expected: int):
        super().__init__(f"Upload-Offset must be {expected}")
        self.expected = expected


class Busy(Exception):
    """Another request is writing to or ingesting this upload right now."""


@dataclass
class Upload:
    tenant_id: int
    id: str
    length: int
    owner: str
    metadata: dict = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    @property
    def folder(self) -> Path:
        return tenant_folder(self.tenant_id)

    @property
    def data_path(self) -> Path:
        return self.folder / f"{self.id}.bin"

    @property
    def state_path(self) -> Path:
        return self.folder / f"{self.id}.json"

    @property
    def offset(self) -> int:
        try:
            return self.data_path.stat().st_size
        except FileNotFoundError:
            return self.length  # being ingested: all bytes arrived

    @property
    def complete(self) -> bool:
        return self.offset >= self.length


def tenant_folder(tenant_id: int) -> Path:
    folder = Path(settings.UPLOAD_DIR) / str(int(tenant_id))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def principal_key(principal) -> str:
    """Uploads belong to who created them; others in the clinic cannot resume or ingest them."""
    if principal.kind == "token":
        return f"token:{principal.token.pk}"
    return f"user:{principal.user.pk}"


def upload_create(*, tenant, length: int, metadata: dict, owner: str) -> Upload:
    upload = Upload(tenant_id=tenant.pk, id=secrets.token_hex(16), length=length, owner=owner,
                    metadata=metadata)
    upload.data_path.touch(exist_ok=False)
    _write_json(upload.state_path, asdict(upload))
    return upload


def upload_get(*, tenant, upload_id: str, owner: str) -> Upload | None:
    if not UPLOAD_ID.match(upload_id or ""):
        return None
    try:
        state = json.loads((tenant_folder(tenant.pk) / f"{upload_id}.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    upload = Upload(**state)
    if upload.tenant_id != tenant.pk or upload.owner != owner:
        return None
    return upload


@contextmanager
def _locked(path: Path, mode: str = "ab") -> Iterator:
    with open(path, mode) as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise Busy() from exc
        yield fh


def upload_append(*, upload: Upload, stream, offset: int, content_length: int | None) -> int:
    """Append a PATCH body at `offset`; returns the new offset. Bytes received before a
    dropped connection are kept (fsynced), so the client resumes from there."""
    with _locked(upload.data_path) as fh:
        current = fh.seek(0, os.SEEK_END)
        if offset != current:
            raise OffsetMismatch(current)
        room = upload.length - current
        if content_length is not None and content_length > room:
            raise ValueError(f"the body is {content_length} bytes, only {room} remain of Upload-Length")
        try:
            while room > 0:
                chunk = stream.read(min(WRITE_CHUNK, room))
                if not chunk:
                    break
                fh.write(chunk)
                room -= len(chunk)
        except OSError:
            pass  # the client went away mid-body: keep what arrived
        finally:
            fh.flush()
            os.fsync(fh.fileno())
        return fh.tell()


def upload_delete(upload: Upload) -> None:
    for path in (upload.data_path, upload.state_path, upload.folder / f"{upload.id}.ingesting"):
        path.unlink(missing_ok=True)


@contextmanager
def upload_claimed(upload: Upload) -> Iterator[Path]:
    """Take the complete data file for ingesting: a rename, so two ingest requests for one
    upload cannot both run. The upload is deleted afterwards whatever happens."""
    claimed = upload.folder / f"{upload.id}.ingesting"
    try:
        os.rename(upload.data_path, claimed)
    except FileNotFoundError as exc:
        raise Busy() from exc
    try:
        yield claimed
    finally:
        upload_delete(upload)


def uploads_expire(*, older_than_hours: float | None = None) -> int:
    """Remove uploads and batches untouched for UPLOAD_EXPIRY_HOURS; returns files removed."""
    hours = settings.UPLOAD_EXPIRY_HOURS if older_than_hours is None else older_than_hours
    cutoff = time.time() - hours * 3600
    root = Path(settings.UPLOAD_DIR)
    removed = 0
    if not root.exists():
        return 0
    for path in root.glob("*/*"):
        try:
            if path.stat().st_mtime < cutoff:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


# Batches: the files a user dropped together; one audit event when the batch is closed.
def batch_create(*, tenant, owner: str) -> str:
    batch_id = secrets.token_hex(16)
    _write_json(tenant_folder(tenant.pk) / f"batch-{batch_id}.json", {"owner": owner})
    (tenant_folder(tenant.pk) / f"batch-{batch_id}.jsonl").touch()
    return batch_id


def batch_exists(*, tenant, batch_id: str, owner: str) -> bool:
    if not UPLOAD_ID.match(batch_id or ""):
        return False
    try:
        state = json.loads((tenant_folder(tenant.pk) / f"batch-{batch_id}.json").read_text())
    except (FileNotFoundError, ValueError):
        return False
    return state.get("owner") == owner


def batch_add(*, tenant, batch_id: str, results: list[dict]) -> None:
    lines = "".join(json.dumps(r) + "\n" for r in results)
    with _locked(tenant_folder(tenant.pk) / f"batch-{batch_id}.jsonl", "a") as fh:
        fh.write(lines)


def batch_pop(*, tenant, batch_id: str) -> list[dict]:
    folder = tenant_folder(tenant.pk)
    path = folder / f"batch-{batch_id}.jsonl"
    try:
        results = [json.loads(line) for line in path.read_text().splitlines() if line]
    except FileNotFoundError:
        results = []
    path.unlink(missing_ok=True)
    (folder / f"batch-{batch_id}.json").unlink(missing_ok=True)
    return results
