"""Every read of the archive's index, always scoped to one clinic; no door builds its own
tenant query. `studies` (one study, its series, what to retrieve), `search` (attribute
matching for QIDO-RS and C-FIND), `worklist` (the study list) and `dashboard` (counts).
Reads raise archive.errors.NotFound, never an HTTP exception."""
