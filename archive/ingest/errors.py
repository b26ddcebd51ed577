"""Why an instance was refused, with the DICOM status/FailureReason code each maps to."""

# PS3.4 / PS3.18 failure reasons (FailureReason (0008,1197) in STOW; C-STORE status).
PROCESSING_FAILURE = 0x0110
# PS3.7 C.4 general status 0111H "Duplicate SOP Instance": the SOP Instance UID is stored
# already with different content. A failure, not a success with a warning (STOW-RS
# WarningReason, C-STORE B000H), at every door: PS3.18 Table I.1-1 puts in
# ReferencedSOPSequence only instances "successfully stored", and the warnings (B000H
# coerced, B006H elements discarded, B007H does not match SOP class) all describe the
# *sent* instance being kept with changes. Here none of the sent bytes are kept (the first
# copy stays); most modalities count a warning as stored and may then delete the only
# copy of the different content. Microsoft's and Google's DICOMweb servers also answer
# this case as a failure.
DUPLICATE_SOP_INSTANCE = 0x0111
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
