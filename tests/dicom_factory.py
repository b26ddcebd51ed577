"""Synthetic DICOM for tests and benchmarks: a CT phantom series that looks like real CT
(air, soft tissue, bone, noise), so compression and rendering behave as on real data."""

import io
from datetime import date

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)


def _phantom_slice(rows: int, cols: int, z: float, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:rows, 0:cols]
    cy, cx = rows / 2, cols / 2
    r = np.hypot((yy - cy) / (rows * 0.42), (xx - cx) / (cols * 0.36))
    img = np.full((rows, cols), -1000.0)  # air
    img[r < 1.0] = 40.0  # soft tissue
    spine = np.hypot((yy - cy * 1.35) / (rows * 0.05), (xx - cx) / (cols * 0.05)) < 1.0
    img[spine] = 700.0 + 200 * np.sin(z)  # bone
    lungs = (np.hypot((yy - cy) / (rows * 0.2), (np.abs(xx - cx) - cols * 0.16) / (cols * 0.09)) < 1.0)
    img[lungs] = -850.0
    img += rng.normal(0, 12, size=img.shape)
    return np.clip(img + 1024, 0, 4095).astype(np.uint16)  # stored values, intercept -1024


def _new_instance(sop_class_uid: str, sop_uid: str) -> Dataset:
    """An empty data set with the file meta of an explicit VR little endian Part 10 file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    return ds


def make_ct_series(
    n_slices: int = 4,
    rows: int = 64,
    cols: int = 64,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    patient_name: str = "Doe^Jane",
    patient_id: str = "PID-0001",
    birth_date: str = "19700101",
    study_date: str | None = None,
    accession: str = "ACC-0001",
    modality: str = "CT",
    referring: str = "Smith^John",
    charset: str | None = None,
    seed: int = 0,
) -> list[Dataset]:
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    rng = np.random.default_rng(seed)
    datasets = []
    for i in range(n_slices):
        sop_uid = generate_uid()
        ds = _new_instance(CTImageStorage, sop_uid)
        if charset:
            ds.SpecificCharacterSet = charset
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[study_uid, "for"])
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = birth_date
        ds.PatientSex = "F"
        ds.StudyDate = study_date or date.today().strftime("%Y%m%d")
        ds.StudyTime = "101500"
        ds.AccessionNumber = accession
        ds.ReferringPhysicianName = referring
        ds.StudyID = "1"
        ds.StudyDescription = "CT CHEST"
        ds.Modality = modality
        ds.SeriesNumber = 1
        ds.SeriesDescription = "AXIAL 1mm"
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.SliceThickness = 1.0
        ds.PixelSpacing = [0.7, 0.7]
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = _phantom_slice(rows, cols, i / 10, rng).tobytes()
        datasets.append(ds)
    return datasets


def make_us_multiframe(frames: int = 8, rows: int = 96, cols: int = 128, *, patient_name: str = "Doe^Jane",
                       patient_id: str = "PID-0001", seed: int = 0) -> Dataset:
    """An ultrasound cine loop: Ultrasound Multi-frame Image Storage, 8-bit MONOCHROME2, a
    bright arc that moves from frame to frame over speckle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    images = []
    for f in range(frames):
        r = np.hypot(yy - 0, xx - cols / 2)
        img = rng.integers(0, 60, size=(rows, cols)).astype(np.float32)  # speckle
        img[np.abs(r - rows * (0.4 + 0.04 * f)) < 4] = 220
        images.append(np.clip(img, 0, 255).astype(np.uint8))
    sop_uid = generate_uid()
    ds = _new_instance(US_MULTIFRAME, sop_uid)
    ds.SOPClassUID, ds.SOPInstanceUID = US_MULTIFRAME, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = patient_name, patient_id, "19800101", "F"
    ds.StudyDate, ds.StudyTime = date.today().strftime("%Y%m%d"), "093000"
    ds.AccessionNumber, ds.StudyID, ds.StudyDescription = "ACC-US-1", "1", "US ABDOMEN"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "US", 1, 1
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.FrameTime, ds.CineRate = 40.0, 25
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.stack(images).tobytes()
    return ds


US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
