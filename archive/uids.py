"""What a DICOM UID may look like: the one check every door and URL uses.

PS3.5 9.1: a UID is numeric components (ISO 646 digits 0-9) separated by ".", the first
digit of a component is not 0 unless the component is the single digit 0, and the whole
is at most 64 characters. PS3.5 6.2 (VR UI): a value of odd length is padded with one
trailing NUL; trailing spaces are a common encoder mistake and are treated as padding too.

pydicom's `UID.is_valid` is weaker: its pattern ends in `$`, which also matches before a
trailing newline ("1.2.3\\n" passes), and `UID()` strips whitespace on both sides before
the check. So the value is checked here as sent, with only its trailing padding removed.
"""

import re

UID_MAX_CHARS = 64
_UID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")
# For URL patterns: the characters a UID can have; is_valid_uid decides the rest.
UID_URL_REGEX = r"[0-9.]{1,64}"


def strip_uid_padding(value: str) -> str:
    """A UI value without its trailing NUL/space padding (leading whitespace is kept, so
    that it fails the check: it is not padding)."""
    return value.rstrip("\0 ")


def is_valid_uid(value: str) -> bool:
    """True if `value` (padding already stripped) is a UID per PS3.5 9.1."""
    return len(value) <= UID_MAX_CHARS and _UID.fullmatch(value) is not None
