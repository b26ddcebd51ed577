"""The storage pipeline's outbox handlers, registered when the storage app loads: the
ARCHIVE rows of one message are archived together (archive/storage/pipeline.py), and the
clinic's opt-in re-encoding follows (archive/storage/compression.py)."""

from archive.outbox.registry import register
from archive.storage.compression import COMPRESS, DROP, compress_rows, drop_rows
from archive.storage.pipeline import ARCHIVE, archive_rows

register(ARCHIVE, batch=True)(archive_rows)
register(COMPRESS, batch=True)(compress_rows)
register(DROP, batch=True)(drop_rows)
