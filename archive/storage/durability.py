"""Where an instance must be before it is acknowledged: `INGEST_DURABILITY`.

- `local`: its encrypted file in this node's tier 1, flushed to disk. One node's disk
  holds it until a worker on the same disk has copied it to both regions: right for one
  host (`make run`, the compose file), not for several web nodes or workers elsewhere.
- `primary`: also in a region, confirmed by the region's own checksum, before the index
  commits it. The primary region, or the secondary while the primary is down: an outage
  of one region does not stop ingest, and the worker later gives the other region its
  copy from whichever holds one. Nothing then depends on one node's disk: a worker on
  another host copies from the region, a read on another node fetches from it, and the
  loss of the node that took the instance loses nothing.

The uploads of a batch run in parallel (`PLACE_THREADS`). An upload that fails leaves no
index row; the objects a failed batch did place are removed again, best effort (an
object left by a killed process is ciphertext that no row points to)."""

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from archive.storage.keys import key_export
from archive.storage.models import InstanceCopy
from cloudpacs.objectstore.objects import object_delete, object_put_checked, region_fault
from cloudpacs.objectstore.regions import PRIMARY, SECONDARY
from cloudpacs.thread_pools import thread_pool

log = logging.getLogger(__name__)

LOCAL, PRIMARY_REGION = "local", "primary"
CHOICES = (LOCAL, PRIMARY_REGION)
PLACE_THREADS = 8

class StorageUnavailable(Exception):
    """Neither region took an instance: it is not acknowledged (the sender retries)."""


@dataclass(frozen=True)
class Placed:
    """An instance's encrypted copy, confirmed in `region` before its acknowledgement."""

    key: str
    region: str
    cipher_sha256: str
    cipher_size: int
    key_id: int

    def copy_row(self, instance) -> InstanceCopy:
        now = timezone.now()
        return InstanceCopy(instance=instance, tenant_id=instance.tenant_id, region=self.region,
                            state=InstanceCopy.VERIFIED, cipher_sha256=self.cipher_sha256,
                            cipher_size=self.cipher_size, key_id=self.key_id, uploaded_at=now,
                            verified_at=now, checked_at=now, attempts=1, updated_at=now)


def durability() -> str:
    mode = settings.INGEST_DURABILITY
    if mode not in CHOICES:
        raise ValueError(f"INGEST_DURABILITY must be one of {', '.join(CHOICES)}, not {mode!r}")
    return mode


# A region that failed is left alone by this process for a while, so that each instance
# does not wait out the same timeouts (the breaker of one batch lasts across batches).
DOWN_SECONDS = 30
_down_until: dict[str, float] = {}


def _mark_down(region: str) -> None:
    _down_until[region] = time.monotonic() + DOWN_SECONDS


def _known_down(region: str) -> bool:
    return _down_until.get(region, 0) > time.monotonic()


def _place_one(key: str, path: Path, key_id: int, down: dict[str, str]) -> Placed:
    with open(path, "rb") as fh:
        digest, size = hashlib.file_digest(fh, "sha256").hexdigest(), fh.tell()
    failures = [f"{region}: {why}" for region, why in down.items()]
    for region in (PRIMARY, SECONDARY):
        if region in down:
            continue
        try:
            object_put_checked(region, key, lambda: open(path, "rb"), sha256=digest, size=size)  # noqa: SIM115
            return Placed(key, region, digest, size, key_id)
        except Exception as exc:
            if not region_fault(exc):
                raise
            _mark_down(region)
            log.warning("region %s did not take an instance at ingest: %s", region, exc)
            failures.append(f"{region}: {exc}")
    raise StorageUnavailable("no storage region took the instance (" + "; ".join(failures) + ")")


def _regions_down(key_id: int) -> dict[str, str]:
    """The regions that cannot take this batch: the data key's document (which a restore
    from that region alone needs) must be there before any object sealed with the key.
    Done here, on the request's thread, which has the database connection."""
    down = {}
    for region in (PRIMARY, SECONDARY):
        if _known_down(region):
            down[region] = f"failed in the last {DOWN_SECONDS} s"
            continue
        try:
            key_export(region=region, key_id=key_id)
        except Exception as exc:
            if not region_fault(exc):
                raise
            _mark_down(region)
            down[region] = str(exc)
    return down


def sealed_place(sealed: dict[str, Path], key_id: int) -> dict[str, Placed]:
    """Put each sealed tier-1 file ({storage key: path}) into a region, all at once; its
    Placed by storage key. Raises StorageUnavailable (or what else stopped an upload)
    after removing what was placed."""
    down = _regions_down(key_id)
    if len(down) == 2:
        raise StorageUnavailable("no storage region is reachable (" + "; ".join(down.values()) + ")")
    pool = thread_pool("place", PLACE_THREADS)
    futures = {key: pool.submit(_place_one, key, path, key_id, down) for key, path in sealed.items()}
    placed, failure = {}, None
    for key, future in futures.items():
        try:
            placed[key] = future.result()
        except Exception as exc:  # noqa: BLE001 - the first is raised once all have ended
            failure = failure or exc
    if failure is not None:
        placed_forget(placed.values())
        raise failure
    return placed


def placed_forget(placed) -> None:
    """Remove copies placed for instances that were not indexed after all."""
    for copy in placed:
        try:
            object_delete(copy.region, copy.key)
        except Exception:  # noqa: BLE001 - ciphertext no row points to; logged, kept
            log.warning("could not remove an unindexed object from %s", copy.region, exc_info=True)
