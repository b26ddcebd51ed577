"""Sequence matching on stored headers (archive/query/sequences.py), rule by rule."""

from archive.query.sequences import sequence_matches

STORED = {"vr": "SQ", "Value": [
    {"00080100": {"vr": "SH", "Value": ["CT-HEAD"]}, "00080104": {"vr": "LO", "Value": ["CT Head [w/o]"]}},
    {"00080100": {"vr": "SH", "Value": ["X1"]}, "00400244": {"vr": "DA", "Value": ["20240105"]},
     "0020000D": {"vr": "UI", "Value": ["1.2.3"]}, "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}},
]}


def item(**elements):
    return {tag: ({"vr": vr, "Value": [value]} if value != "" else {"vr": vr}) for tag, (vr, value) in elements.items()}


def test_single_values_wildcards_and_universal():
    assert sequence_matches(STORED, item(**{"00080100": ("SH", "CT-HEAD")}))
    assert not sequence_matches(STORED, item(**{"00080100": ("SH", "ct-head")}))  # case counts, but for names
    assert sequence_matches(STORED, item(**{"00080104": ("LO", "CT Head [w/o]")}))  # brackets are no pattern
    assert sequence_matches(STORED, item(**{"00080104": ("LO", "*Head*")}))
    assert not sequence_matches(STORED, item(**{"00080104": ("LO", "?Head*")}))
    assert sequence_matches(STORED, item(**{"00080100": ("SH", "")}))  # universal
    assert sequence_matches(None, item(**{"00080100": ("SH", "")}))


def test_one_item_must_match_every_key():
    assert not sequence_matches(STORED, item(**{"00080100": ("SH", "CT-HEAD"), "00400244": ("DA", "20240105")}))
    assert sequence_matches(STORED, item(**{"00080100": ("SH", "X1"), "00400244": ("DA", "20240101-20240131")}))
    assert not sequence_matches(STORED, item(**{"00080100": ("SH", "X1"), "00400244": ("DA", "-20231231")}))


def test_uid_lists_and_names():
    assert sequence_matches(STORED, {"0020000D": {"vr": "UI", "Value": ["9.9", "1.2.3"]}})
    assert not sequence_matches(STORED, {"0020000D": {"vr": "UI", "Value": ["9.9"]}})
    assert sequence_matches(STORED, {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "doe^*"}]}})
    assert not sequence_matches(None, item(**{"00080100": ("SH", "X1")}))  # no sequence stored
