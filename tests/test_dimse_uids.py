"""cloudpacs.dimse.uids: negotiation UIDs checked once, with pynetdicom's answers."""

import pytest
from pydicom.uid import UID
from pynetdicom import utils

from cloudpacs.dimse import uids


@pytest.mark.parametrize("value", ["1.2.840.10008.1.2", b"1.2.840.10008.1.2\x00", UID("1.2.840.10008.1.2.1")])
def test_the_kept_answer_is_pynetdicoms(value):
    for _ in range(2):
        kept = uids.set_uid(value, "Transfer Syntax Name")
        assert kept == utils.set_uid(value, "Transfer Syntax Name")
        assert isinstance(kept, UID)


def test_an_invalid_uid_is_refused_every_time():
    for _ in range(2):  # an exception is never kept
        with pytest.raises(ValueError, match="Invalid 'Abstract Syntax Name'"):
            uids.set_uid("1.2." + "3" * 70, "Abstract Syntax Name")


def test_the_arguments_are_part_of_the_answer():
    assert uids.set_uid(None, "x") is None
    with pytest.raises(TypeError):
        uids.set_uid(None, "x", allow_none=False)
    assert uids.set_uid("", "x") == ""
    with pytest.raises(ValueError, match="must not be an empty"):
        uids.set_uid("", "x", allow_empty=False)
    with pytest.raises(TypeError):
        uids.set_uid(12, "x")


def test_validity_as_pydicom_says():
    for text in ("1.2.840.10008.1.2", "1.02.3", "1.2.", "1.2.a", "1." * 40):
        assert uids._CheckedUID(text).is_valid is UID(text).is_valid


def test_nothing_longer_than_a_uid_is_kept():
    """A peer not yet admitted sends UIDs padded at will (up to a PDU's size): padded
    values are answered as pynetdicom answers them, and never kept."""
    before = uids._set_uid.cache_info().currsize
    padded = b"1.2.840.10008.1.1" + b" " * 60000
    assert uids.set_uid(padded, "Abstract Syntax Name") == "1.2.840.10008.1.1"
    assert uids._set_uid.cache_info().currsize == before

