"""UID checks of association negotiation, answered once per UID instead of every time.

pynetdicom (3.0) checks each UID it meets while it decodes an A-ASSOCIATE-RQ and builds
the A-ASSOCIATE-AC: every abstract and transfer syntax of every proposed context, through
`set_uid` (a new UID object, a validator that imports its configuration, pydicom's regex)
and, for each transfer syntax added to a context, pydicom's regex twice more. A modality
such as dcmtk's storescu proposes up to 128 contexts of three transfer syntaxes, each UID
checked several times over, association after association: 14% of the gateway's CPU
where each association stores one image (many modalities open one per image).

The answers depend on the UID's text alone, so each is kept once checked (bounded:
least-recently-used out). What pynetdicom did is unchanged: the same UID values, the same
ValueError for an invalid one (an exception is never kept, so it is raised every time); a
warning about a non-conformant UID is logged the first time it is met, not every time.
Only the negotiation's modules use the kept answers: the UIDs of DIMSE messages (SOP
Instance UIDs among them) are checked as before and never kept. pynetdicom's
`_config.ENFORCE_UID_CONFORMANCE` and `_config.VALIDATORS` are read when a UID is first
checked: neither gateway changes them, and one that did would have to clear the kept
answers (`_set_uid.cache_clear()`)."""

from functools import lru_cache

from pydicom.uid import UID
from pynetdicom import pdu_items, pdu_primitives, presentation, utils

KEPT = 4096  # a few hundred standard UIDs, and room for vendors' private ones
LONGEST_KEPT = 65  # a UID is at most 64 characters, padded to an even length on the wire

_set_uid = lru_cache(maxsize=KEPT)(utils.set_uid)


def set_uid(value, name, allow_empty=True, allow_none=True, validate=True):
    """pynetdicom's `set_uid`, answered from what it said before for the same arguments."""
    if value is None or not isinstance(value, str | bytes) or len(value) > LONGEST_KEPT:
        # Its own errors; and nothing longer than a UID (with its padding byte) is kept: a
        # peer that is not yet admitted could otherwise fill the cache with padded values.
        return utils.set_uid(value, name, allow_empty, allow_none, validate)
    # A str and a UID of the same text are one key: both give that text as a UID.
    return _set_uid(value, name, allow_empty, allow_none, validate)


_regex_valid = UID.is_valid  # pydicom's own property


@lru_cache(maxsize=KEPT)
def _valid(text: str) -> bool:
    return bool(_regex_valid.fget(text))  # on the plain text: a new UID would warn again


class _CheckedUID(UID):
    """Transfer syntaxes pynetdicom adds to a presentation context get pydicom's UID
    validity from the kept answers: `presentation` makes its UIDs with this class."""

    @property
    def is_valid(self) -> bool:
        return _valid(str(self))


def install() -> None:
    """Once per process, by each gateway's AE."""
    for module in (pdu_items, pdu_primitives, presentation):
        module.set_uid = set_uid
    presentation.UID = _CheckedUID
