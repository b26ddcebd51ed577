"""The embedded broker of `make run`: kombu's filesystem transport, with messages that
appear in the queue folder only once they are complete.

kombu's own `_put` creates the message file in the queue folder and only then writes the
payload, while `_get` moves and reads any file it lists without taking the writer's lock: a
worker that polls at that moment reads an empty message, dies with `JSONDecodeError`
("Unrecoverable error") and the message is gone (seen in 2 of 14 bench rounds). Here the
payload is written under a name `_get` never takes (it takes only `*.<queue>.msg`) and
renamed into place, which is atomic within one folder."""

import os
import tempfile
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# A file being written: the reader skips it (its name does not end in ".<queue>.msg").
PARTIAL_PREFIX = ".partial-"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put `payload` onto `queue`, whole or not at all."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        data = str_to_bytes(dumps(payload))
        try:
            fd, partial = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=self.data_folder_out)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(partial, os.path.join(self.data_folder_out, name))
            except BaseException:
                if os.path.exists(partial):
                    os.unlink(partial)
                raise
        except OSError as exc:
            raise ChannelError(f"Cannot add a message to {self.data_folder_out!r}") from exc


class Transport(filesystem.Transport):
    Channel = Channel
