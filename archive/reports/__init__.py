"""Reports: a study's written report (draft, signed, amended) or a signed PDF, stored in the
study as a DICOM object so every door serves it."""
