"""A DICOMDIR (PS3.10 media directory, PS3.3 F.3 Basic Directory IOD) for a zip of a
study's files, built from the index alone: patient, study, series and one record per
instance, each pointing at its file in the zip. pydicom encodes it; the records' offsets
(bytes from the start of the file to each record's item tag) are computed the way
pydicom's own FileSet writer does, before the records are encoded with them."""

from dataclasses import dataclass, field

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
CHARSET = "ISO_IR 192"  # UTF-8: names in any script
SQ_HEADER = 12  # explicit VR SQ: tag, VR, reserved, length
ITEM_HEADER = 8
RECORD_TYPES = {  # SOP classes that are not images, by prefix (PS3.3 F.4)
    "1.2.840.10008.5.1.4.1.1.88.": "SR DOCUMENT",
    "1.2.840.10008.5.1.4.1.1.104.": "ENCAP DOC",
    "1.2.840.10008.5.1.4.1.1.11.": "PRESENTATION",
    "1.2.840.10008.5.1.4.1.1.66": "REGISTRATION",
    "1.2.840.10008.5.1.4.1.1.481.": "RT PLAN",
}


@dataclass
class _Node:
    record: Dataset
    children: list["_Node"] = field(default_factory=list)
    offset: int = 0


def _record(kind: str, **values) -> Dataset:
    ds = Dataset()
    ds.OffsetOfTheNextDirectoryRecord = 0
    ds.RecordInUseFlag = 0xFFFF
    ds.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    ds.DirectoryRecordType = kind
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _record_type(sop_class_uid: str) -> str:
    for prefix, kind in RECORD_TYPES.items():
        if sop_class_uid.startswith(prefix):
            return kind
    return "IMAGE"


def _encoded_length(record: Dataset) -> int:
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, record, parent_encoding=CHARSET)
    return len(buffer.getvalue())


def _depth_first(nodes: list[_Node]):
    for node in nodes:
        yield node
        yield from _depth_first(node.children)


def _link(nodes: list[_Node]) -> None:
    for i, node in enumerate(nodes):
        node.record.OffsetOfTheNextDirectoryRecord = nodes[i + 1].offset if i + 1 < len(nodes) else 0
        node.record.OffsetOfReferencedLowerLevelDirectoryEntity = node.children[0].offset if node.children else 0
        _link(node.children)


def dicomdir_bytes(study, series: list, instances: dict, file_ids: dict) -> bytes:
    """`series`: the study's Series rows in order; `instances`: series pk -> its Instance
    rows in order; `file_ids`: instance pk -> its path components in the zip."""
    patient = _Node(_record("PATIENT", PatientID=study.patient_identifier, PatientName=study.patient_name))
    study_node = _Node(_record("STUDY", StudyDate=study.study_date, StudyTime=study.study_time,
                               StudyDescription=study.study_description,
                               StudyInstanceUID=study.study_instance_uid, StudyID=study.study_id,
                               AccessionNumber=study.accession_number))
    patient.children.append(study_node)
    for s in series:
        series_node = _Node(_record("SERIES", Modality=s.modality or "OT", SeriesInstanceUID=s.series_instance_uid,
                                    SeriesNumber=s.series_number if s.series_number is not None else ""))
        study_node.children.append(series_node)
        for inst in instances.get(s.pk, []):
            series_node.children.append(_Node(_record(
                _record_type(inst.sop_class_uid), ReferencedFileID=file_ids[inst.pk],
                ReferencedSOPClassUIDInFile=inst.sop_class_uid,
                ReferencedSOPInstanceUIDInFile=inst.sop_instance_uid,
                ReferencedTransferSyntaxUIDInFile=inst.transfer_syntax_uid,
                InstanceNumber=inst.instance_number if inst.instance_number is not None else "")))

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MEDIA_STORAGE_DIRECTORY
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = CHARSET
    ds.FileSetID = "CLOUDPACS"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0

    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    write_dataset(out, ds[:0x00041220])  # the elements before the Directory Record Sequence
    # The offsets: where each record's item tag will be, in the order the sequence lists them.
    offset = out.tell() + SQ_HEADER
    ordered = list(_depth_first([patient]))
    for node in ordered:
        node.offset = offset
        offset += ITEM_HEADER + _encoded_length(node.record)
    _link([patient])
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = patient.offset
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = patient.offset
    ds.DirectoryRecordSequence = [node.record for node in ordered]

    final = DicomBytesIO()
    final.is_little_endian, final.is_implicit_VR = True, False
    final.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(final, meta, enforce_standard=True)
    write_dataset(final, ds)
    return final.getvalue()
