"""De-identified shares (PS3.15 Annex E, Basic Application Level Confidentiality Profile),
for second opinions and teaching.

Attributes pass by an allow-list, not a deny-list: only what describes the image (pixel
module, geometry, modality, numbering) reaches the referrer; names, IDs, dates,
descriptions, institutions, devices, free text, private tags and every sequence are left
out, so a vendor's unusual place for a patient's name cannot slip through. The patient
becomes "Anonymous^<n>" with an ID derived from the share's own key; every instance UID
(study, series, SOP instance, frame of reference) is replaced by a 2.25 UID derived from
that key by HMAC-SHA256, the same across all of the share's studies, and mapped back
when the referrer's viewer names it in a URL. Pixel data is not changed: text burned into
the pixels is flagged when the share is made, never removed."""

import hashlib
import hmac
import io
from functools import cached_property

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from archive.models import Instance, Series
from archive.storage.reader import open_instance

METHOD = "CloudPACS share: PS3.15 Basic Application Level Confidentiality Profile (allow-list, UIDs replaced)"
# Instance UIDs replaced by the share's pseudonyms (class and syntax UIDs name no one).
MAPPED_UIDS = {"0020000D", "0020000E", "00080018", "00200052"}
KEPT = {
    "00080016", "00020010", "00080060", "00080061", "00080008", "00080056", "00200011", "00200013",
    "00200012", "00201041", "00201206", "00201208", "00201209", "00200032", "00200037", "00280030",
    "00180050", "00180088", "00280034", "00200020", "00280002", "00280004", "00280006", "00280008",
    "00280009", "00280010", "00280011", "00280100", "00280101", "00280102", "00280103", "00281050",
    "00281051", "00281052", "00281053", "00281054", "00282110", "00281101", "00281102", "00281103",
    "00281201", "00281202", "00281203", "00181063", "00180040", "00280301", "00180015", "00185100",
    "7FE00010", "7FE00008", "7FE00009",
} | MAPPED_UIDS
# The bulk data a viewer may fetch: pixels and palette colour tables.
BULK_TAGS = {"7FE00010", "7FE00008", "7FE00009", "00281201", "00281202", "00281203"}
RETRIEVE_URL = "00081190"
# Modalities whose images often carry the patient's name in their pixels.
BURNED_IN_PRONE = {"US", "SC", "OT", "XC", "ES", "DX", "CR", "XA"}


class Deidentifier:
    """One share's pseudonyms: UIDs both ways, and the patients' numbers."""

    def __init__(self, share):
        self.share = share
        self.key = bytes.fromhex(share.pseudonym_key)

    def uid(self, real: str) -> str:
        digest = hmac.new(self.key, real.encode(), hashlib.sha256).digest()[:16]
        return f"2.25.{int.from_bytes(digest, 'big')}"

    @cached_property
    def _maps(self) -> tuple[dict, dict]:
        """(pseudo -> real for every study, series and instance UID of the share,
        real study UID -> the patient's number in the share)."""
        tenant = self.share.tenant
        studies = list(self.share.shared_studies().order_by("pk").values_list("pk", "study_instance_uid",
                                                                              "patient_id"))
        study_pks = [pk for pk, _, _ in studies]
        reals = [uid for _, uid, _ in studies]
        reals += Series.objects.for_tenant(tenant).filter(study_id__in=study_pks).values_list(
            "series_instance_uid", flat=True)
        reals += Instance.objects.for_tenant(tenant).filter(study_id__in=study_pks).values_list(
            "sop_instance_uid", flat=True)
        patients: dict[int, int] = {}
        numbers = {uid: patients.setdefault(patient, len(patients) + 1) for _, uid, patient in studies}
        return {self.uid(r): r for r in reals}, numbers

    def real(self, pseudo: str) -> str | None:
        return self._maps[0].get(pseudo)

    @cached_property
    def _pseudonyms(self) -> dict:
        return {real: pseudo for pseudo, real in self._maps[0].items()}

    def patient(self, real_study_uid: str) -> tuple[str, str]:
        number = self._maps[1].get(real_study_uid, 0)
        return f"Anonymous^{number}", f"ANON-{self.uid(f'patient:{number}')[5:17]}"

    def _url(self, url: str) -> str:
        """A URL of ours with each real UID in its path replaced by its pseudonym."""
        return "/".join(self._pseudonyms.get(part, part) for part in url.split("/"))

    def json(self, dataset: dict) -> dict:
        """A DICOM JSON object (QIDO-RS result or WADO-RS metadata), de-identified."""
        out = {}
        for tag, elem in dataset.items():
            if (tag not in KEPT and tag != RETRIEVE_URL) or elem.get("vr") == "SQ":
                continue  # a sequence, even under a kept tag, could carry anything
            if tag in MAPPED_UIDS:
                elem = {"vr": "UI", "Value": [self.uid(v) for v in elem.get("Value", [])]}
            elif tag == RETRIEVE_URL or "BulkDataURI" in elem:
                if "BulkDataURI" in elem:
                    elem = {**elem, "BulkDataURI": self._url(elem["BulkDataURI"])}
                else:
                    elem = {"vr": "UR", "Value": [self._url(v) for v in elem.get("Value", [])]}
            elif "InlineBinary" in elem and tag not in BULK_TAGS:
                continue
            out[tag] = elem
        study = (dataset.get("0020000D", {}).get("Value") or [""])[0]
        name, pid = self.patient(study)
        out["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": name}]}
        out["00100020"] = {"vr": "LO", "Value": [pid]}
        out["00120062"] = {"vr": "CS", "Value": ["YES"]}
        out["00120063"] = {"vr": "LO", "Value": [METHOD]}
        return dict(sorted(out.items()))

    def part10(self, instance, keys: dict | None = None) -> bytes:
        """A stored instance as a de-identified Part 10 file (in memory, one at a time)."""
        with open_instance(instance, keys=keys) as fh:
            source = dcmread(fh)
        out = Dataset()
        for elem in source:
            tag = f"{elem.tag:08X}"
            if tag in KEPT and elem.VR != "SQ":
                out.add(elem)
        study_uid = source.get("StudyInstanceUID", "")
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            if keyword in out:
                setattr(out, keyword, self.uid(str(getattr(out, keyword))))
        out.PatientName, out.PatientID = self.patient(study_uid)
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = METHOD
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = source.SOPClassUID
        meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
        meta.TransferSyntaxUID = source.file_meta.TransferSyntaxUID
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        out.file_meta = meta
        buffer = io.BytesIO()
        out.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()


def burned_in_risk(tenant, studies: list) -> bool:
    """True when any image of `studies` says it has burned-in annotation, or comes from a
    modality that often has it and does not say it has none."""
    headers = Instance.objects.for_tenant(tenant).filter(study__in=studies).values_list("metadata", flat=True)
    for metadata in headers.iterator():
        burned = ((metadata or {}).get("00280301", {}).get("Value") or [""])[0].upper()
        modality = ((metadata or {}).get("00080060", {}).get("Value") or [""])[0].upper()
        if burned == "YES" or (modality in BURNED_IN_PRONE and burned != "NO"):
            return True
    return False
