"""A study as a zip of DICOM files with a DICOMDIR, streamed as it is read: nothing of it
is written to disk, memory holds one chunk at a time (and the DICOMDIR), and the length
is known before the first byte (stored, not deflated: the pixel data is compressed or
compresses little), so a browser shows real progress."""

from collections.abc import Iterator

from zipstream import ZIP_STORED, ZipStream

from archive.download.dicomdir import dicomdir_bytes
from archive.models import Instance, Series
from archive.storage.reader import InstanceUnavailable, open_instance

CHUNK = 1 << 20


def _file_chunks(inst, keys: dict) -> Iterator[bytes]:
    with open_instance(inst, keys=keys) as fh:
        if fh.size != inst.size_bytes:
            # The zip's header said this size: a file of another size must break the
            # download, not shift every file after it.
            raise InstanceUnavailable(f"instance {inst.pk} reads {fh.size} bytes, indexed as {inst.size_bytes}")
        while chunk := fh.read(CHUNK):
            yield chunk


def study_zip(study) -> ZipStream:
    """The zip: DICOMDIR at its root, files under DICOM/PAnnnnnn/STnnnnnn/SEnnnnnn/IMnnnnnn
    (PS3.10 file IDs: at most 8 components of 8 characters)."""
    series = list(Series.objects.for_tenant(study.tenant).filter(study=study).order_by("series_number", "pk"))
    rows = (Instance.objects.for_tenant(study.tenant).filter(study=study)
            .only("pk", "tenant_id", "series_id", "storage_key", "size_bytes", "sop_class_uid",
                  "sop_instance_uid", "transfer_syntax_uid", "instance_number")
            .order_by("series_id", "instance_number", "pk"))
    instances: dict[int, list] = {}
    for inst in rows:
        instances.setdefault(inst.series_id, []).append(inst)
    file_ids, order = {}, []
    for s_index, s in enumerate(series, start=1):
        for i_index, inst in enumerate(instances.get(s.pk, []), start=1):
            file_ids[inst.pk] = ["DICOM", "PA000001", "ST000001", f"SE{s_index:06d}", f"IM{i_index:06d}"]
            order.append(inst)
    zs = ZipStream(compress_type=ZIP_STORED, sized=True)
    zs.add(dicomdir_bytes(study, series, instances, file_ids), "DICOMDIR")
    keys: dict = {}  # the clinic's data keys, looked up once for the whole download
    for inst in order:
        zs.add(_file_chunks(inst, keys), "/".join(file_ids[inst.pk]), size=inst.size_bytes)
    return zs
