"""A clinic's whole archive, decrypted, in a form any PACS reads: no lock-in.

    <target>/studies/<StudyInstanceUID>/DICOMDIR
    <target>/studies/<StudyInstanceUID>/DICOM/PA000001/ST000001/SEnnnnnn/IMnnnnnn
    <target>/studies/<StudyInstanceUID>/manifest.csv
    <target>/manifest.csv        (every study's rows, written once all are there)

Each file is the instance as stored (Part 10), streamed from tier 1 or a region and checked
against its SHA-256 as it is written. A study counts as exported only once all of it is
there: in a folder it is written under `<uid>.partial` and renamed; in a bucket its
manifest is its last object. So an interrupted export (a full disk, a region down, a
killed process) is resumed by running it again: finished studies are skipped, a partial
one is written again, and nothing partial is ever reported as done."""

import csv
import hashlib
import io
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from archive.download.dicomdir import dicomdir_bytes
from archive.models import Instance, Series, Study
from archive.storage.reader import stored_chunks
from tenants.audit import Actor, audit_record

MANIFEST_FIELDS = ["patient_id", "patient_name", "study_instance_uid", "series_instance_uid", "sop_instance_uid",
                   "sop_class_uid", "transfer_syntax_uid", "size_bytes", "sha256", "file"]


class ExportError(Exception):
    """The export stopped; what is done stays done, and a new run resumes."""


@dataclass
class Progress:
    studies_total: int
    bytes_total: int
    studies_done: int = 0
    studies_skipped: int = 0
    instances: int = 0
    bytes_done: int = 0  # written by this run
    bytes_skipped: int = 0  # of the studies an earlier run exported
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.bytes_done / elapsed
        todo = max(self.bytes_total - self.bytes_skipped, 0)
        left = max(todo - self.bytes_done, 0)
        eta = f"{left / rate / 60:.0f} min" if rate and left else "-"
        return (f"{self.studies_done}/{self.studies_total} studies ({self.studies_skipped} there already), "
                f"{self.bytes_done / 1e6:,.1f} of {todo / 1e6:,.1f} MB, {rate / 1e6:.1f} MB/s, ETA {eta}")


class FolderTarget:
    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.describe = str(self.root)

    def study_done(self, name: str) -> bool:
        return (self.root / name / "manifest.csv").exists()

    @contextmanager
    def study(self, name: str):
        final, partial = self.root / name, self.root / f"{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)  # what an interrupted run left
        partial.mkdir(parents=True)
        try:
            yield lambda path, chunks: self._write(partial / path, chunks)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        os.replace(partial, final)

    @staticmethod
    def _write(path: Path, chunks: Iterator[bytes]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def write(self, path: str, data: bytes) -> None:
        self._write(self.root / path, iter([data]))


class BucketTarget:
    """s3://BUCKET/PREFIX, with boto3's credentials and endpoint from the environment
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_DEFAULT_REGION)."""

    def __init__(self, url: str) -> None:
        import boto3

        parts = urlsplit(url)
        if not parts.netloc:
            raise ExportError(f"{url}: name a bucket, s3://BUCKET/PREFIX")
        self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
        self.client = boto3.client("s3")
        self.describe = f"s3://{self.bucket}/{self.prefix}"

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def study_done(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(f"{name}/manifest.csv"))
            return True
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise

    @contextmanager
    def study(self, name: str):
        # Objects of a study written before an interruption are overwritten; its manifest,
        # written last, is what says it is done.
        yield lambda path, chunks: self._put(f"{name}/{path}", chunks)

    def _put(self, path: str, chunks: Iterator[bytes]) -> None:
        from boto3.s3.transfer import TransferConfig

        # On this thread: the chunks are read (and decrypted, with database look-ups of
        # the clinic's keys) as they are sent, and boto3's own threads have no connection.
        self.client.upload_fileobj(ChunkReader(chunks), self.bucket, self._key(path),
                                   Config=TransferConfig(use_threads=False))

    def read(self, path: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"].read()

    def write(self, path: str, data: bytes) -> None:
        self._put(path, iter([data]))


class ChunkReader(io.RawIOBase):
    """A forward-only file over chunks, for boto3's multipart upload."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._pending = chunks, b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        if size < 0:
            size = len(self._pending)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


def export_target(to: str):
    return BucketTarget(to) if to.startswith("s3://") else FolderTarget(to)


def _checked(instance: Instance, keys: dict) -> Iterator[bytes]:
    """The stored bytes; the last chunk is not given up before the SHA-256 matched."""
    digest, held = hashlib.sha256(), None
    for chunk in stored_chunks(instance, keys=keys):
        digest.update(chunk)
        if held is not None:
            yield held
        held = chunk
    if digest.hexdigest() != instance.sha256:
        raise ExportError(f"instance {instance.sop_instance_uid} does not read back as stored "
                          "(its checksum differs); the fixity audit repairs it from the other region")
    if held is not None:
        yield held


def manifest_bytes(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def study_entries(study: Study, keys: dict, progress: Progress) -> Iterator[tuple[str, Iterator[bytes]]]:
    """(path in the study's folder, its bytes) of each file of the study, in order: the
    DICOMDIR, every instance (checked as it is read), the manifest last."""
    series = list(Series.objects.for_tenant(study.tenant).filter(study=study).order_by("series_number", "pk"))
    instances: dict[int, list[Instance]] = {}
    for inst in Instance.objects.for_tenant(study.tenant).filter(study=study).order_by(
            "series_id", "instance_number", "pk"):
        instances.setdefault(inst.series_id, []).append(inst)
    file_ids, rows = {}, []
    for s_index, s in enumerate(series, start=1):
        for i_index, inst in enumerate(instances.get(s.pk, []), start=1):
            file_ids[inst.pk] = ["DICOM", "PA000001", "ST000001", f"SE{s_index:06d}", f"IM{i_index:06d}"]
    yield "DICOMDIR", iter([dicomdir_bytes(study, series, instances, file_ids)])
    for s in series:
        for inst in instances.get(s.pk, []):
            path = "/".join(file_ids[inst.pk])
            yield path, _checked(inst, keys)
            progress.instances += 1
            progress.bytes_done += inst.size_bytes
            rows.append({"patient_id": study.patient_identifier, "patient_name": study.patient_name,
                         "study_instance_uid": study.study_instance_uid,
                         "series_instance_uid": s.series_instance_uid, "sop_instance_uid": inst.sop_instance_uid,
                         "sop_class_uid": inst.sop_class_uid, "transfer_syntax_uid": inst.transfer_syntax_uid,
                         "size_bytes": inst.size_bytes, "sha256": inst.sha256,
                         "file": f"studies/{study.study_instance_uid}/{path}"})
    yield "manifest.csv", iter([manifest_bytes(rows)])  # last: it marks the study done


def _study_export(study: Study, write: Callable, keys: dict, progress: Progress) -> None:
    for path, chunks in study_entries(study, keys, progress):
        write(path, chunks)


def clinic_export(*, tenant, to: str, actor: Actor, report: Callable[[Progress], None] = lambda p: None) -> Progress:
    """Export every study of the clinic to `to` (a folder, or s3://BUCKET/PREFIX); resumes
    where an earlier run stopped. Audited once, whether it finished or not."""
    target = export_target(to)
    # The studies there are now: one arriving during a long export is in the next run.
    pks = list(Study.objects.for_tenant(tenant).order_by("pk").values_list("pk", flat=True))
    studies = Study.objects.for_tenant(tenant).filter(pk__in=pks).order_by("pk")
    progress = Progress(studies_total=len(pks),
                        bytes_total=sum(Instance.objects.for_tenant(tenant).values_list("size_bytes", flat=True)))
    error = None
    try:
        keys: dict = {}
        for study in studies.iterator(chunk_size=200):
            name = f"studies/{study.study_instance_uid}"
            if target.study_done(name):
                progress.studies_skipped += 1
                progress.studies_done += 1
                progress.bytes_skipped += sum(Instance.objects.for_tenant(tenant).filter(study=study)
                                              .values_list("size_bytes", flat=True))
                report(progress)
                continue
            with target.study(name) as write:
                _study_export(study, write, keys, progress)
            progress.studies_done += 1
            report(progress)
        target.write("manifest.csv", manifest_bytes([
            row for study in studies.only("study_instance_uid").iterator(chunk_size=200)
            for row in csv.DictReader(io.StringIO(target.read(
                f"studies/{study.study_instance_uid}/manifest.csv").decode()))]))
    except OSError as exc:
        error = f"the target refused a write: {exc}"
        raise ExportError(f"{error}. What is exported stays; run the export again to resume.") from exc
    except ExportError as exc:
        error = str(exc)
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise ExportError(f"{error}. What is exported stays; run the export again to resume.") from exc
    finally:
        audit_record(tenant=tenant, actor=actor, action="clinic.exported", obj_type="clinic", obj_id=tenant.pk,
                     detail={"to": "bucket" if to.startswith("s3://") else "folder", "complete": error is None,
                             "studies": progress.studies_done, "already_there": progress.studies_skipped,
                             "instances": progress.instances, "bytes": progress.bytes_done,
                             **({"error": error[:300]} if error else {})})
    return progress
