"""The leftovers sweep: what a crashed or killed process leaves at rest.

- Spool files of transfers that ended without finishing (archive.storage.scratch).
- Tier-1 files no Instance row owns, older than TIER1_ORPHAN_GRACE_SECONDS: placed by an
  ingest whose process died before its transaction committed, or left by a failed delete.
  A file is removed only if it is plausibly this archive's: its header names a data key of
  this database, or it is a plaintext Part 10 file. Anything else is logged and kept, so
  a sweep run against the wrong database does not empty tier 1.
- Tier-1 files still in plaintext (written before tier 1 was encrypted) are sealed in
  place with the clinic's active key, after a check against the ingest checksum.
Run by beat hourly (archive.sweep_leftovers) and by `manage.py spool_sweep`."""

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings

from archive.ingest.spool import file_sha256
from archive.models import Instance
from archive.storage.keys import active_data_key
from archive.storage.models import DataKey
from archive.storage.scratch import scratch_sweep
from archive.storage.tier1 import PARTIAL_SUFFIX, tier1_root, tier1_seal
from cloudpacs.objectstore import crypto

log = logging.getLogger(__name__)
BATCH = 500
PART10_MAGIC_OFFSET = 128


@dataclass
class SweepResult:
    spool_files: int = 0
    tier1_orphans: int = 0
    tier1_sealed: int = 0
    tier1_kept_unknown: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def leftovers_sweep(*, orphan_grace_seconds: float | None = None,
                    spool_after_seconds: float | None = None) -> SweepResult:
    result = SweepResult(spool_files=scratch_sweep(loose_after_seconds=spool_after_seconds))
    tier1_sweep(result, grace_seconds=orphan_grace_seconds)
    return result


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(max(crypto.HEADER_SIZE, PART10_MAGIC_OFFSET + 4))


def _sealed(head: bytes) -> bool:
    return head[:len(crypto.MAGIC)] == crypto.MAGIC


def _plain_part10(head: bytes) -> bool:
    return head[PART10_MAGIC_OFFSET:PART10_MAGIC_OFFSET + 4] == b"DICM"


def tier1_sweep(result: SweepResult, *, grace_seconds: float | None = None) -> None:
    grace = settings.TIER1_ORPHAN_GRACE_SECONDS if grace_seconds is None else grace_seconds
    cutoff = time.time() - grace
    root = tier1_root()
    batch: list[tuple[str, Path]] = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            try:
                if path.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            if name.endswith(PARTIAL_SUFFIX):  # a write that never finished
                path.unlink(missing_ok=True)
                result.tier1_orphans += 1
                continue
            batch.append((path.relative_to(root).as_posix(), path))
            if len(batch) >= BATCH:
                _tier1_batch(batch, result)
                batch = []
    if batch:
        _tier1_batch(batch, result)
    if result.tier1_orphans or result.tier1_sealed:
        log.info("tier 1: removed %d files no instance owns, sealed %d plaintext files",
                 result.tier1_orphans, result.tier1_sealed)


def _tier1_batch(batch: list[tuple[str, Path]], result: SweepResult) -> None:
    owners = {i.storage_key: i for i in Instance.unscoped.select_related("tenant").filter(
        storage_key__in=[key for key, _ in batch])}
    our_keys = None
    for key, path in batch:
        try:
            head = _head(path)
        except FileNotFoundError:
            continue
        instance = owners.get(key)
        if instance is not None:
            if not _sealed(head) and _plain_part10(head):
                result.tier1_sealed += _seal_in_place(instance, path)
            continue
        if our_keys is None:
            our_keys = set(DataKey.unscoped.values_list("pk", flat=True))
        ours = _plain_part10(head)
        if _sealed(head):
            try:
                ours = crypto.parse_header(head)[1] in our_keys
            except crypto.DecryptionError:
                ours = False
        if ours:
            path.unlink(missing_ok=True)
            result.tier1_orphans += 1
        else:
            result.tier1_kept_unknown += 1
            log.warning("tier 1: kept %s: no instance owns it, but it is not sealed with a key of "
                        "this database", key)


def _seal_in_place(instance: Instance, path: Path) -> int:
    if file_sha256(path) != instance.sha256:
        log.warning("tier 1: plaintext file of instance %s does not match its checksum; left for "
                    "the reader to replace from a region", instance.pk)
        return 0
    key_id, data_key = active_data_key(tenant=instance.tenant)
    # Sealed beside it and renamed over it: the plaintext's blocks are freed, not rewritten.
    tier1_seal(path, instance.storage_key, data_key=data_key, key_id=key_id)
    return 1
