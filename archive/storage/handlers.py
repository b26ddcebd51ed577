"""The storage pipeline's outbox handler, registered when the storage app loads: the
ARCHIVE rows of one message are archived together (archive/storage/pipeline.py)."""

from archive.outbox.registry import register
from archive.storage.pipeline import ARCHIVE, archive_rows

register(ARCHIVE, batch=True)(archive_rows)
