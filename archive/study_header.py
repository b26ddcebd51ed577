"""A study's patient and study attributes as DICOM, taken from one of its images: what a
new object of the study (a report) or an image moved into it (a correction) must carry."""

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from archive.models import Instance, Study

# Patient and General Study modules: what every instance of a study shares.
PATIENT_KEYWORDS = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex")
STUDY_KEYWORDS = ("StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "StudyID",
                  "ReferringPhysicianName", "StudyDescription")
COPIED = PATIENT_KEYWORDS + STUDY_KEYWORDS
_COPIED_TAGS = {f"{tag_for_keyword(keyword):08X}" for keyword in COPIED}
# Type 2 attributes: present in every instance, maybe empty.
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "AccessionNumber", "StudyID", "ReferringPhysicianName")


def study_header(study: Study, *, exclude_classes: tuple[str, ...] = ()) -> Dataset:
    """The copied attributes, from the study's first image (of a class not excluded)."""
    source = (Instance.objects.for_tenant(study.tenant).filter(study=study).exclude(sop_class_uid__in=exclude_classes)
              .order_by("pk").values_list("metadata", flat=True).first())
    # Only the copied attributes: the rest (pixel data's bulk data URI) is not needed.
    header = Dataset.from_json({tag: value for tag, value in (source or {}).items() if tag in _COPIED_TAGS})
    ds = Dataset()
    for keyword in COPIED:
        if keyword in header:
            setattr(ds, keyword, header.data_element(keyword).value)
        elif keyword in _TYPE2:
            setattr(ds, keyword, "")
    ds.StudyInstanceUID = study.study_instance_uid
    return ds
