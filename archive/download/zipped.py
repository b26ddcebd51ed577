"""A study as a zip of DICOM files with a DICOMDIR, streamed as it is read: nothing of it
is written to disk, memory holds one chunk at a time (and the DICOMDIR), and the length
is known before the first byte (stored, not deflated: the pixel data is compressed or
compresses little), so a browser shows real progress."""

from collections.abc import Iterator
from types import SimpleNamespace

from zipstream import ZIP_STORED, ZipStream

from archive.download.dicomdir import dicomdir_bytes
from archive.models import Instance, Series
from archive.storage.reader import stored_chunks


def _deidentified_chunks(inst, keys: dict, deid) -> Iterator[bytes]:
    yield deid.part10(inst, keys)  # when the zip reaches it, not when it is listed


def _pseudonymous(study, series: list, instances: dict, deid):
    """The rows the DICOMDIR describes, as a de-identified share shows them."""
    name, pid = deid.patient(study.study_instance_uid)
    study_view = SimpleNamespace(patient_identifier=pid, patient_name=name, study_date="", study_time="",
                                 study_description="", study_instance_uid=deid.uid(study.study_instance_uid),
                                 study_id="", accession_number="")
    series_view = [SimpleNamespace(pk=s.pk, modality=s.modality, series_number=s.series_number,
                                   series_instance_uid=deid.uid(s.series_instance_uid)) for s in series]
    instance_view = {pk: [SimpleNamespace(pk=i.pk, sop_class_uid=i.sop_class_uid, instance_number=i.instance_number,
                                          transfer_syntax_uid=i.transfer_syntax_uid,
                                          sop_instance_uid=deid.uid(i.sop_instance_uid)) for i in rows]
                     for pk, rows in instances.items()}
    return study_view, series_view, instance_view


def study_zip(study, deidentifier=None) -> ZipStream:
    """The zip: DICOMDIR at its root, files under DICOM/PAnnnnnn/STnnnnnn/SEnnnnnn/IMnnnnnn
    (PS3.10 file IDs: at most 8 components of 8 characters). With a share's `deidentifier`
    every file is de-identified as it is read (its size then unknown up front)."""
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
    zs = ZipStream(compress_type=ZIP_STORED, sized=deidentifier is None)
    described = (study, series, instances) if deidentifier is None else _pseudonymous(study, series, instances,
                                                                                      deidentifier)
    zs.add(dicomdir_bytes(*described, file_ids), "DICOMDIR")
    keys: dict = {}  # the clinic's data keys, looked up once for the whole download
    for inst in order:
        if deidentifier is None:
            zs.add(stored_chunks(inst, keys=keys), "/".join(file_ids[inst.pk]), size=inst.size_bytes)
        else:
            zs.add(_deidentified_chunks(inst, keys, deidentifier), "/".join(file_ids[inst.pk]))
    return zs
