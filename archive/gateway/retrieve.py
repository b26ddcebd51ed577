"""C-GET and C-MOVE (PS3.4 C.4.2, C.4.3): which instances an identifier asks for, and each
instance as a data set in a transfer syntax the receiving peer accepted.

- The identifier names what to send by unique keys only (PS3.4 C.4.2.2.1): PatientID at
  PATIENT level (Patient Root), StudyInstanceUID at STUDY, SeriesInstanceUID at SERIES,
  SOPInstanceUID at IMAGE; the level's key may be a list of UIDs, the keys above it narrow.
- An instance goes as stored when the peer accepted that syntax; else it is converted, to an
  uncompressed syntax first (any peer takes those), then to a lossless one the peer took.
  An instance that cannot be sent (no context for its SOP class, no decoder, unreadable) is
  a failed sub-operation with its SOP Instance UID in the failure list, never dropped silently.
"""

import copy
import logging
from collections.abc import Iterator

import pydicom
from pydicom import Dataset
from pydicom.uid import UID
from pynetdicom import AE
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from archive.dicomweb.negotiate import UNCOMPRESSED, encodable
from archive.dicomweb.transcode import TranscodeError, transcode_dataset
from archive.gateway.find import PATIENT, key_value
from archive.models import Instance
from archive.selectors.studies import RETRIEVE_FIELDS
from archive.storage.reader import InstanceUnavailable, open_instance
from archive.uids import is_valid_uid, strip_uid_padding

log = logging.getLogger(__name__)

GET_MODELS = (PatientRootQueryRetrieveInformationModelGet, StudyRootQueryRetrieveInformationModelGet)
MOVE_MODELS = (PatientRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelMove)
PATIENT_ROOT = (PatientRootQueryRetrieveInformationModelGet, PatientRootQueryRetrieveInformationModelMove)

PENDING = 0xFF00
CANCELLED = 0xFE00
IDENTIFIER_DOES_NOT_MATCH = 0xA900
TOO_MANY = 0xA701  # out of resources: unable to calculate the number of matches
MAX_SUBOPERATIONS = 0xFFFF  # the sub-operation counts are US

LEVEL_KEYS = {"STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}
FILTERS = {"StudyInstanceUID": "study__study_instance_uid", "SeriesInstanceUID": "series__series_instance_uid",
           "SOPInstanceUID": "sop_instance_uid"}
ORDER = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


class RetrieveRefused(Exception):
    def __init__(self, status: int, comment: str):
        super().__init__(comment)
        self.status, self.comment = status, comment


class CannotSend(Exception):
    """This instance cannot go to this peer (no accepted context, no codec, unreadable)."""


def _uids(identifier: Dataset, keyword: str) -> list[str]:
    values = [strip_uid_padding(v) for v in key_value(identifier[keyword]).split("\\")] if keyword in identifier else []
    values = [v for v in values if v]
    bad = [v for v in values if not is_valid_uid(v)]
    if bad:
        raise RetrieveRefused(IDENTIFIER_DOES_NOT_MATCH, f"{keyword} is not a UID (no wildcards in a retrieve)")
    return values


def retrieve_instances(*, tenant, identifier: Dataset, model: str) -> tuple[str, list[Instance]]:
    """(level, the clinic's instances the identifier names, in study/series/instance order).
    Another clinic's UIDs match nothing. RetrieveRefused for an identifier the model refuses."""
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    levels = (PATIENT, *LEVEL_KEYS) if model in PATIENT_ROOT else tuple(LEVEL_KEYS)
    if level not in levels:
        raise RetrieveRefused(IDENTIFIER_DOES_NOT_MATCH,
                              f"QueryRetrieveLevel {level or '(none)'} is not one of {', '.join(levels)}")
    qs = Instance.objects.for_tenant(tenant)
    if level == PATIENT or model in PATIENT_ROOT:
        patient_id = str(identifier.get("PatientID", "") or "").strip()
        if level == PATIENT and (not patient_id or "*" in patient_id or "?" in patient_id):
            raise RetrieveRefused(IDENTIFIER_DOES_NOT_MATCH, "a PATIENT level retrieve needs one PatientID")
        if patient_id:
            qs = qs.filter(study__patient_identifier=patient_id)
    depth = ORDER.index(LEVEL_KEYS[level]) + 1 if level != PATIENT else 0
    for keyword in ORDER[:depth]:
        uids = _uids(identifier, keyword)
        if keyword == LEVEL_KEYS[level] and not uids:
            raise RetrieveRefused(IDENTIFIER_DOES_NOT_MATCH, f"a {level} level retrieve needs {keyword}")
        if len(uids) > 1 and keyword != LEVEL_KEYS[level]:
            raise RetrieveRefused(IDENTIFIER_DOES_NOT_MATCH, f"{keyword} above the level is one UID, not a list")
        if uids:
            qs = qs.filter(**{f"{FILTERS[keyword]}__in": uids})
    rows = list(qs.only(*RETRIEVE_FIELDS).select_related("study", "series")
                .order_by("study_id", "series__series_number", "series_id", "instance_number", "pk")
                [:MAX_SUBOPERATIONS + 1])
    if len(rows) > MAX_SUBOPERATIONS:
        raise RetrieveRefused(TOO_MANY, f"more than {MAX_SUBOPERATIONS} instances; retrieve by study or series")
    return level, rows


def accepted_syntaxes(assoc, sop_class: str) -> list[str]:
    """The transfer syntaxes `assoc`'s peer accepted for storing `sop_class`."""
    return [str(cx.transfer_syntax[0]) for cx in assoc.accepted_contexts if cx.abstract_syntax == sop_class]


def dataset_for_peer(inst: Instance, accepted: list[str], keys: dict) -> Dataset:
    """The stored instance, decrypted into memory, in a transfer syntax of `accepted`."""
    if not accepted:
        raise CannotSend(f"the peer accepted no context for {UID(inst.sop_class_uid).name}")
    try:
        with open_instance(inst, keys=keys) as fh:
            ds = pydicom.dcmread(fh)
    except InstanceUnavailable as exc:
        raise CannotSend(f"not readable now: {exc}") from exc
    stored = UID(inst.transfer_syntax_uid)
    if stored in accepted:
        return ds
    if stored.is_little_endian and not stored.is_compressed and any(ts in UNCOMPRESSED for ts in accepted):
        return ds  # pynetdicom re-encodes between the uncompressed little-endian syntaxes
    targets = [ts for ts in accepted if ts in UNCOMPRESSED] + [ts for ts in accepted if ts in encodable()]
    for target in targets:
        try:
            return transcode_dataset(ds, target)
        except TranscodeError as exc:
            log.info("cannot convert an instance to %s: %s", UID(target).name, exc)
        except Exception as exc:  # noqa: BLE001 - decoders raise many types on odd data
            raise CannotSend(f"cannot decode {stored.name}: {type(exc).__name__}") from exc
    raise CannotSend(f"stored as {stored.name}; the peer accepted only "
                     f"{', '.join(UID(ts).name for ts in accepted)}")


def unsendable(inst: Instance) -> Dataset:
    """What pynetdicom is given for an instance that cannot be sent: without a transfer
    syntax its C-STORE fails at once, which counts one failed sub-operation and lists the
    SOP Instance UID among the failed ones (its handler API has no other way to say so)."""
    ds = Dataset()
    ds.SOPClassUID = inst.sop_class_uid
    ds.SOPInstanceUID = inst.sop_instance_uid
    return ds


def datasets_for(assoc, instances: list[Instance], is_cancelled) -> Iterator[tuple[int, Dataset | None]]:
    """(status, data set) pairs for pynetdicom's C-GET and C-MOVE handlers, one instance in
    memory at a time; stops with a cancel status when the peer sent C-CANCEL."""
    keys: dict = {}  # the clinic's data keys, looked up once per retrieve
    for inst in instances:
        if is_cancelled():
            yield CANCELLED, None
            return
        try:
            ds = dataset_for_peer(inst, accepted_syntaxes(assoc, inst.sop_class_uid), keys)
        except CannotSend as exc:
            log.warning("retrieve: instance %s is a failed sub-operation: %s", inst.pk, exc)
            ds = unsendable(inst)
        yield PENDING, ds


def move_contexts(instances: list[Instance]) -> list:
    """The presentation contexts to propose to a C-MOVE destination: per SOP class, its
    stored syntaxes and the two uncompressed ones (at most 128 contexts, PS3.8)."""
    by_class: dict[str, set[str]] = {}
    for inst in instances:
        by_class.setdefault(inst.sop_class_uid, set()).add(inst.transfer_syntax_uid)
    contexts = []
    for sop_class, stored in by_class.items():
        for ts in sorted(stored - UNCOMPRESSED):  # a compressed one alone, so the peer can take it
            contexts.append(build_context(sop_class, [ts]))
        contexts.append(build_context(sop_class, sorted(UNCOMPRESSED, reverse=True)))
    return contexts[:128]


def ae_calling_as(ae: AE, ae_title: str) -> AE:
    """A copy of the gateway's AE that calls out as `ae_title` (the clinic's) and keeps the
    association it opened last. pynetdicom's C-MOVE opens the sub-association with the
    acceptor's AE, whose title is the gateway's; the handler needs that association to
    pick each instance's transfer syntax."""
    clinic_ae = copy.copy(ae)
    clinic_ae.ae_title = ae_title
    clinic_ae.sub_association = None

    def associate(*args, **kwargs):
        clinic_ae.sub_association = AE.associate(clinic_ae, *args, **kwargs)
        return clinic_ae.sub_association

    clinic_ae.associate = associate
    return clinic_ae
