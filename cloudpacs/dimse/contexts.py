"""Which presentation contexts a DICOM gateway accepts (the cloud's and the on-site edge's).

Storage is unrestricted: any storage SOP class, private ones included, since modalities
send vendor objects a PACS must keep. Everything else is accepted only when the gateway
serves it (its supported contexts: verification, the Q/R models, storage commitment).

pynetdicom's unrestricted storage treats as storage every UID it has no name for, and
pydicom names some classes differently (Modality Worklist FIND is one): such a context was
accepted, then its request failed. `negotiate` first rejects every context of a
standard, non-storage SOP class the gateway does not support, and lets pynetdicom
negotiate the rest. It replaces `negotiate_unrestricted` where pynetdicom's ACSE calls it
(`install`, once per process, by each gateway's AE).
"""

from pydicom.uid import UID
from pynetdicom import acse, presentation
from pynetdicom.presentation import PresentationContext

ABSTRACT_SYNTAX_NOT_SUPPORTED = 0x03  # PS3.8 9.3.3.2: provider rejection


def storage_like(uid: str) -> bool:
    """Private, unknown, or a storage class by its name ("… Storage", "… Storage - For
    Presentation", "… Storage - Trial"; not the Storage Commitment service)."""
    uid = UID(uid)
    return uid.is_private or uid.name == uid or ("Storage" in uid.name and "Commitment" not in uid.name)


def negotiate(rq_contexts: list, ac_contexts: list, roles=None):
    served = {cx.abstract_syntax for cx in ac_contexts}
    refused, rest = [], []
    for cx in rq_contexts:
        (rest if cx.abstract_syntax in served or storage_like(cx.abstract_syntax) else refused).append(cx)
    result, ac_roles = presentation.negotiate_unrestricted(rest, ac_contexts, roles)
    for rq in refused:
        cx = PresentationContext()
        cx.context_id = rq.context_id
        cx.abstract_syntax = rq.abstract_syntax
        cx.transfer_syntax = rq.transfer_syntax[:1]
        cx.result = ABSTRACT_SYNTAX_NOT_SUPPORTED
        result.append(cx)
    return sorted(result, key=lambda cx: cx.context_id), ac_roles


def install() -> None:
    acse.negotiate_unrestricted = negotiate
