"""Ingest a finished upload: one file, or each member of a zip, through instance_ingest.

Every file gets a result the page can show: stored, already present, skipped (DICOMDIR)
or rejected with a readable reason."""

import zipfile
from pathlib import Path, PurePosixPath

from archive.ingest.service import IngestContext, IngestResult, Outcome, instance_ingest
from archive.ingest.spool import TooLarge, spool_path
from archive.storage.durability import StorageUnavailable
from archive.upload.zipsafe import (
    Budget,
    MemberRejected,
    ZipRejected,
    is_zip,
    member_spool,
    zip_members,
)

STORED, PRESENT, SKIPPED, REJECTED = "stored", "already_present", "skipped", "rejected"


def _readable(result: IngestResult) -> str:
    reason = result.reason or "refused"
    if reason.startswith("not a DICOM file"):
        return "not a DICOM file"
    if result.outcome == Outcome.CONFLICT:
        return "an image with the same UID but different content is stored already; kept the first"
    return reason


def _entry(name: str, result: IngestResult) -> dict:
    status = {Outcome.STORED: STORED, Outcome.ALREADY_PRESENT: PRESENT}.get(result.outcome, REJECTED)
    return {"name": name, "status": status, "reason": "" if result.ok else _readable(result),
            "study_uid": result.study_instance_uid if result.ok else ""}


def _rejected(name: str, reason: str, status: str = REJECTED) -> dict:
    return {"name": name, "status": status, "reason": reason, "study_uid": ""}


def _ingested(name: str, ingest) -> dict:
    try:
        return _entry(name, ingest())
    except StorageUnavailable:  # INGEST_DURABILITY=primary with both regions down
        return _rejected(name, "no storage region is reachable now; nothing of it was stored: upload it again later")


def upload_ingest(*, tenant, path: Path, name: str, actor) -> list[dict]:
    """Results for every file in the upload at `path` (a zip is unpacked member by member)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    if base.upper() == "DICOMDIR":
        return [_rejected(name, "DICOMDIR (the CD's index) skipped; its images are uploaded as "
                                "files", SKIPPED)]
    if is_zip(path):
        return _zip_ingest(tenant=tenant, path=path, name=name, actor=actor)
    try:
        spooled = spool_path(path)
    except TooLarge as exc:
        return [_rejected(name, f"the file is {exc}")]
    return [_ingested(name, lambda: instance_ingest(tenant=tenant, spooled=spooled, actor=actor))]


def _zip_ingest(*, tenant, path: Path, name: str, actor) -> list[dict]:
    results: list[dict] = []
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            budget = Budget(size)
            context = IngestContext()
            for member in zip_members(zf, size):
                shown = f"{name}/{member.name}"
                if member.info is None:
                    results.append(_rejected(shown, member.skip_reason,
                                             SKIPPED if member.skipped_not_rejected else REJECTED))
                    continue
                try:
                    spooled = member_spool(zf, member.info, budget)
                except MemberRejected as exc:
                    results.append(_rejected(shown, str(exc)))
                    continue
                results.append(_ingested(shown, lambda spooled=spooled: instance_ingest(
                    tenant=tenant, spooled=spooled, actor=actor, context=context)))
    except ZipRejected as exc:
        results.append(_rejected(name, str(exc)))
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        results.append(_rejected(name, f"not a readable zip file: {exc}"))
    return results
