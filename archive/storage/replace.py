"""A new object for an instance that is already stored: its re-encoding (compression) or
its corrected header (archive/corrections/). The bytes are sealed into tier 1 under a new
storage key and put into both regions, each confirmed by the region's checksum, before the
caller points the instance at it; until then readers see the old object, whole."""

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from archive.ingest.errors import InvalidInstance
from archive.ingest.parse import ParsedInstance, parse_outcome
from archive.models import Instance
from archive.storage.keys import active_data_key, key_export
from archive.storage.tier1 import tier1_delete, tier1_seal
from cloudpacs.objectstore.objects import object_delete, object_put_checked
from cloudpacs.objectstore.regions import REGIONS

log = logging.getLogger(__name__)


@dataclass
class Placed:
    key: str
    parsed: ParsedInstance
    key_id: int
    cipher_sha256: str
    cipher_size: int
    regions: list[str]
    size: int
    sha256: str


def _tmp_dir() -> str:
    path = Path(settings.INGEST_TMP_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def parse_bytes(data: bytes) -> ParsedInstance | InvalidInstance:
    """Our parser's reading of a Part 10 file held in memory."""
    with tempfile.NamedTemporaryFile(dir=_tmp_dir(), suffix=".dcm") as plain:
        plain.write(data)
        plain.flush()
        return parse_outcome(Path(plain.name))


def object_place(tenant, data: bytes) -> Placed:
    """Seal `data` (a Part 10 file) under a new key in tier 1 and both regions. On any
    failure nothing of it is left behind."""
    new_key = Instance.new_storage_key(tenant.pk)
    placed: list[str] = []
    try:
        with tempfile.NamedTemporaryFile(dir=_tmp_dir(), suffix=".dcm") as plain:
            plain.write(data)
            plain.flush()
            parsed = parse_outcome(Path(plain.name))
            if isinstance(parsed, InvalidInstance):  # our own bytes refused by our own parser
                raise RuntimeError(f"the new object does not parse: {parsed.reason}")
            key_id, data_key = active_data_key(tenant=tenant)
            sealed = tier1_seal(Path(plain.name), new_key, data_key=data_key, key_id=key_id)
        with open(sealed, "rb") as fh:
            cipher_sha256, cipher_size = hashlib.file_digest(fh, "sha256").hexdigest(), fh.tell()
        for region in REGIONS:
            key_export(region=region, key_id=key_id)
            object_put_checked(region, new_key, lambda: open(sealed, "rb"), sha256=cipher_sha256,  # noqa: SIM115
                               size=cipher_size)
            placed.append(region)
    except BaseException:
        object_remove(new_key, placed)
        raise
    return Placed(new_key, parsed, key_id, cipher_sha256, cipher_size, placed, len(data),
                  hashlib.sha256(data).hexdigest())


def object_remove(key: str, regions) -> None:
    tier1_delete(key)
    for region in regions:
        try:
            object_delete(region, key)
        except Exception:  # noqa: BLE001 - an unreferenced object; logged
            log.warning("could not remove %s from %s", key, region, exc_info=True)
