"""Unpack a zip member by member into spool files, refusing what could hurt us.

Names are never used as paths (each member goes to a fresh spool file), so `../` or
absolute names cannot write outside; they are still refused, as are symlinks, deep
nesting, encrypted members and zips inside the zip. Against zip bombs: declared sizes are
checked before anything is unpacked, and the bytes actually produced are counted while
streaming (zipfile already stops at the declared size and checks the CRC; counting keeps
the limits true even if that changed)."""

import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings

from archive.ingest.spool import SpooledFile, TooLarge

READ = 1 << 20
MAX_DEPTH = 32
# Below this, a member may compress as well as it likes (a blank slice is ~1000:1).
RATIO_GRACE_BYTES = 32 * 1024 * 1024


class ZipRejected(Exception):
    """The whole archive is refused (bomb, too many members, not a readable zip)."""


class MemberRejected(Exception):
    """One member is refused; the others are still unpacked."""


@dataclass
class Member:
    name: str
    info: zipfile.ZipInfo | None
    skip_reason: str = ""  # set: the member is listed but not unpacked
    skipped_not_rejected: bool = False


def _unsafe_name(info: zipfile.ZipInfo) -> str:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path in the zip: refused"
    if ".." in parts:
        return "path leaves the zip folder (../): refused"
    if len(parts) > MAX_DEPTH:
        return f"nested more than {MAX_DEPTH} folders deep: refused"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link: refused"
    if info.flag_bits & 0x1:
        return "encrypted member: cannot be read"
    return ""


def _ratio_limit(compressed: int) -> int:
    return max(settings.UPLOAD_ZIP_MAX_RATIO * compressed, RATIO_GRACE_BYTES)


def zip_members(zf: zipfile.ZipFile, archive_size: int) -> Iterator[Member]:
    infos = zf.infolist()
    if len(infos) > settings.UPLOAD_ZIP_MAX_MEMBERS:
        raise ZipRejected(f"the zip has {len(infos)} entries; at most "
                          f"{settings.UPLOAD_ZIP_MAX_MEMBERS} are accepted")
    declared = sum(i.file_size for i in infos)
    if declared > _total_limit(archive_size):
        raise ZipRejected("the zip would unpack to far more than its own size "
                          f"({declared} bytes from {archive_size}): refused as a possible zip bomb")
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename
        reason = _unsafe_name(info)
        if not reason and info.file_size > _ratio_limit(info.compress_size):
            raise ZipRejected(f"{name}: compressed {info.compress_size} bytes unpack to "
                              f"{info.file_size}: refused as a possible zip bomb")
        base = PurePosixPath(name.replace("\\", "/")).name
        if not reason and base.upper() == "DICOMDIR":
            yield Member(name, None, "DICOMDIR (the CD's index) skipped; its images are uploaded "
                                     "as files", skipped_not_rejected=True)
            continue
        if not reason and base.lower().endswith(".zip"):
            reason = "a zip inside the zip is not unpacked: upload it on its own"
        yield Member(name, None if reason else info, reason)


def _total_limit(archive_size: int) -> int:
    return min(settings.UPLOAD_ZIP_MAX_TOTAL_BYTES,
               max(settings.UPLOAD_ZIP_MAX_RATIO * archive_size, RATIO_GRACE_BYTES))


class Budget:
    """Bytes actually unpacked so far, against the archive's total limit."""

    def __init__(self, archive_size: int):
        self.limit = _total_limit(archive_size)
        self.used = 0


def member_spool(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget) -> SpooledFile:
    """Stream one member into a spool file, counting the real output."""
    limit = min(_ratio_limit(info.compress_size), info.file_size)
    spooled = SpooledFile()
    written = 0
    try:
        with zf.open(info) as source:
            while chunk := source.read(READ):
                written += len(chunk)
                budget.used += len(chunk)
                if written > limit:
                    raise ZipRejected(f"{info.filename}: unpacks to more than it declares: "
                                      "refused as a possible zip bomb")
                if budget.used > budget.limit:
                    raise ZipRejected("the zip unpacks to more than its limit: refused as a "
                                      "possible zip bomb")
                spooled.write(chunk)
        spooled.finish()
    except TooLarge as exc:
        spooled.close()
        raise MemberRejected(f"the file is {exc}") from exc
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        spooled.close()
        raise MemberRejected(f"cannot be unpacked: {exc}") from exc
    except BaseException:
        spooled.close()
        raise
    return spooled


def is_zip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
