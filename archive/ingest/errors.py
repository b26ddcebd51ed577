"""Why an instance was refused, with the DICOM status/FailureReason code each maps to."""

# PS3.4 / PS3.18 failure reasons (FailureReason (0008,1197) in STOW; C-STORE status).
PROCESSING_FAILURE = 0x0110
SOP_CLASS_NOT_SUPPORTED = 0x0122
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
STUDY_UID_MISMATCH = 0xC409  # as dcm4chee: instance does not belong to the target study


class InvalidInstance(Exception):
    """The bytes are not an instance we can store. `code` is the DICOM failure reason."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def __reduce__(self):  # crosses from the parse process as a value (parse_ahead)
        return type(self), (self.code, self.reason)
