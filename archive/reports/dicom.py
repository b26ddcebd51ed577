"""The DICOM object a signed report version becomes, so the report travels with the study
through every door (QIDO/WADO, C-FIND/C-GET, exports, shares): a Basic Text SR (PS3.3
A.35.1) for a written report, an Encapsulated PDF (A.45.1) for a signed PDF. Patient and
study attributes are copied from an image of the study; the text is UTF-8 (ISO_IR 192)."""

from datetime import datetime
from io import BytesIO

from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from archive.models import Study
from archive.study_header import study_header

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
REPORT_CLASSES = (BASIC_TEXT_SR, ENCAPSULATED_PDF)
REPORT_SERIES_NUMBER = 9999  # after the images, as modalities number their report series

def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


REPORT_TITLE = _code("18748-4", "LN", "Diagnostic Imaging Report")
FINDINGS = _code("121071", "DCM", "Finding")
IMPRESSION = _code("121073", "DCM", "Impression")


def _study_header(study: Study) -> Dataset:
    return study_header(study, exclude_classes=REPORT_CLASSES)  # an image's, not an earlier report's


def _common(ds: Dataset, *, sop_class: str, sop_uid: str, series_uid: str, number: int, when: datetime,
            modality: str, clinic: str) -> None:
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.Modality, ds.SeriesInstanceUID = modality, series_uid
    ds.SeriesNumber, ds.InstanceNumber = REPORT_SERIES_NUMBER, number
    ds.SeriesDescription = "Report"
    ds.Manufacturer, ds.InstitutionName = "CloudPACS", clinic[:64]
    ds.ContentDate, ds.ContentTime = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = ds.ContentDate, ds.ContentTime
    ds.TimezoneOffsetFromUTC = "+0000"  # the dates and times above are UTC


def _part10(ds: Dataset) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID, meta.ImplementationClassUID = ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    buffer = BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _person_name(name: str) -> str:
    """"Jane Q. Doe" -> "Doe^Jane Q." (family name first, as DICOM writes it)."""
    parts = name.strip().split()
    return f"{parts[-1]}^{' '.join(parts[:-1])}" if len(parts) > 1 else name.strip()


def _predecessor(study_uid: str, series_uid: str, sop_class: str, sop_uid: str) -> Dataset:
    ref, series, item = Dataset(), Dataset(), Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = sop_class, sop_uid
    series.SeriesInstanceUID, series.ReferencedSOPSequence = series_uid, [ref]
    item.StudyInstanceUID, item.ReferencedSeriesSequence = study_uid, [series]
    return item


def text_report(*, study: Study, series_uid: str, number: int, findings: str, impression: str,
                signer: str, signed_at: datetime, clinic: str, amends: tuple[str, str] | None = None) -> tuple[str, bytes]:
    """(SOP Instance UID, Part 10 bytes) of a signed written report. `amends` is the
    (SOP Class, SOP Instance UID) of the version this one replaces."""
    ds = _study_header(study)
    sop_uid = generate_uid()
    _common(ds, sop_class=BASIC_TEXT_SR, sop_uid=sop_uid, series_uid=series_uid, number=number, when=signed_at,
            modality="SR", clinic=clinic)
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.PerformedProcedureCodeSequence = []
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "VERIFIED"
    observer = Dataset()
    observer.VerifyingObserverName = _person_name(signer)
    observer.VerifyingOrganization = clinic[:64]
    observer.VerificationDateTime = signed_at.strftime("%Y%m%d%H%M%S")
    observer.VerifyingObserverIdentificationCodeSequence = []
    ds.VerifyingObserverSequence = [observer]
    if amends is not None:
        ds.PredecessorDocumentsSequence = [_predecessor(study.study_instance_uid, series_uid, *amends)]
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = [REPORT_TITLE]
    items = []
    for concept, text in ((FINDINGS, findings), (IMPRESSION, impression)):
        if text:
            item = Dataset()
            item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
            item.ConceptNameCodeSequence = [concept]
            item.TextValue = text
            items.append(item)
    ds.ContentSequence = items
    return sop_uid, _part10(ds)


def pdf_report(*, study: Study, series_uid: str, number: int, pdf: bytes, title: str, signed_at: datetime,
               clinic: str) -> tuple[str, bytes]:
    """(SOP Instance UID, Part 10 bytes) of a signed PDF, encapsulated."""
    ds = _study_header(study)
    sop_uid = generate_uid()
    _common(ds, sop_class=ENCAPSULATED_PDF, sop_uid=sop_uid, series_uid=series_uid, number=number,
            when=signed_at, modality="DOC", clinic=clinic)
    ds.ConversionType = "WSD"  # workstation: it was made on a computer, not scanned
    ds.AcquisitionDateTime = signed_at.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"  # a report names its patient
    ds.DocumentTitle = title[:64]
    ds.ConceptNameCodeSequence = [REPORT_TITLE]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")  # OB: even length
    return sop_uid, _part10(ds)
