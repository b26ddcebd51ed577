"""Upload the spool to the cloud by STOW-RS, oldest first, in batches; forget an instance
only once the cloud said it holds it.

- A batch is at most EDGE_BATCH_INSTANCES instances and EDGE_BATCH_BYTES bytes, streamed
  (chunked) from the sealed files as they are decrypted: memory is a segment or two
  whatever the study's size.
- The cloud's answer names each instance: stored, or already held (a retry after a cut
  connection sends the same bytes again, which the cloud answers as already held), comes
  off the queue; a permanent refusal (not DICOM, a bad UID, another instance under the
  same UID) goes to rejected/; anything else stays queued.
- No answer, a refused token, paused uploads or a server error: the whole batch stays and
  the uploader waits, 1 s doubling to EDGE_MAX_BACKOFF_SECONDS, then tries again.
"""

import json
import logging
import random
import threading
import uuid
from collections.abc import Iterator

import requests

from edge.spool import DecryptionError, Entry, Spool, uid_digest
from edge.state import EdgeState

log = logging.getLogger(__name__)

STORED_SEQUENCE, FAILED_SEQUENCE = "00081199", "00081198"
SOP_INSTANCE_UID, FAILURE_REASON = "00081155", "00081197"
# Failure reasons that will not change on a retry (PS3.4 B.2.3, and CloudPACS's conflict).
PERMANENT = {0x0111, 0x0122, 0xA900, 0xC000, 0xC409}


class CloudUnavailable(Exception):
    """This batch could not be delivered now; try again later."""


class DamagedEntry(Exception):
    def __init__(self, entry: Entry, why: str):
        super().__init__(why)
        self.entry = entry


class Uploader(threading.Thread):
    def __init__(self, spool: Spool, state: EdgeState, *, cloud_url: str, token: str,
                 batch_instances: int = 50, batch_bytes: int = 64 << 20, max_backoff: float = 300,
                 timeout: float = 300):
        super().__init__(name="edge-uploader", daemon=True)
        self.spool, self.state = spool, state
        self.url = cloud_url.rstrip("/") + "/studies"
        self.batch_instances, self.batch_bytes = batch_instances, batch_bytes
        self.max_backoff, self.timeout = max_backoff, timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.wake, self.stopping = threading.Event(), threading.Event()
        self.backoff = 0.0

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            batch = self._batch()
            if not batch:
                self.wake.wait(5)
                self.wake.clear()
                continue
            try:
                retry_some = self.deliver(batch)
            except CloudUnavailable as exc:
                self.state.failed(str(exc))
                retry_some = True
            except DamagedEntry as exc:
                log.error("a spooled instance is damaged; kept in rejected/: %s", exc)
                self.spool.reject(exc.entry, f"damaged in the spool: {exc}")
                self.state.rejected_one()
                continue
            if retry_some:
                self.backoff = min(self.max_backoff, max(1.0, self.backoff * 2))
                self.stopping.wait(self.backoff * random.uniform(0.8, 1.2))
            else:
                self.backoff = 0.0

    def _batch(self) -> list[Entry]:
        batch, size = [], 0
        for entry in self.spool.entries():
            if not self.spool.sealed_here(entry):
                self.state.note_other_key()
                continue
            if batch and (len(batch) >= self.batch_instances or size + entry.size > self.batch_bytes):
                break
            batch.append(entry)
            size += entry.size
        return batch

    def _body(self, batch: list[Entry], boundary: str) -> "Body":
        """The multipart/related body, streamed, with its length known beforehand: sent
        with Content-Length, as curl sends it, which every server and proxy takes (some
        refuse chunked uploads)."""
        part_head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        closing = f"--{boundary}--\r\n".encode()
        try:
            length = sum(len(part_head) + self.spool.plain_size(e) + 2 for e in batch) + len(closing)
        except (DecryptionError, OSError) as exc:
            raise DamagedEntry(batch[0], str(exc)) from exc

        def chunks() -> Iterator[bytes]:
            for entry in batch:
                yield part_head
                try:
                    yield from self.spool.plain_chunks(entry)
                except (DecryptionError, OSError) as exc:
                    raise DamagedEntry(entry, str(exc)) from exc
                yield b"\r\n"
            yield closing

        return Body(chunks(), length)

    def deliver(self, batch: list[Entry]) -> bool:
        """Send one batch and settle each instance by the cloud's answer; True when some
        stay queued for a later try."""
        boundary = uuid.uuid4().hex
        headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                   "Accept": "application/dicom+json"}
        try:
            response = self.session.post(self.url, data=self._body(batch, boundary), headers=headers,
                                         timeout=(10, self.timeout))
        except requests.RequestException as exc:  # a DamagedEntry from the body passes as it is
            raise CloudUnavailable(f"cloud not reachable: {type(exc).__name__}") from exc
        if response.status_code in (401, 403):
            raise CloudUnavailable(f"the cloud refused the token (HTTP {response.status_code})")
        if response.status_code == 402:
            raise CloudUnavailable("the cloud paused uploads: the clinic's payment is overdue")
        if response.status_code not in (200, 202, 409):
            raise CloudUnavailable(f"the cloud answered HTTP {response.status_code}")
        try:
            answer = json.loads(response.content or b"{}")
        except ValueError:
            raise CloudUnavailable(f"the cloud answered HTTP {response.status_code} without a STOW-RS body") from None
        return self._settle(batch, answer)

    def _settle(self, batch: list[Entry], answer: dict) -> bool:
        by_digest = {entry.digest: entry for entry in batch}
        stored = [_uid(item) for item in answer.get(STORED_SEQUENCE, {}).get("Value", [])]
        failed = [(_uid(item), _reason(item)) for item in answer.get(FAILED_SEQUENCE, {}).get("Value", [])]
        settled = 0
        for uid in stored:
            entry = by_digest.pop(uid_digest(uid), None)
            if entry is not None:
                self.spool.done(entry)
                settled += 1
        last_error = ""
        for uid, reason in failed:
            entry = by_digest.get(uid_digest(uid))
            if entry is None:
                continue
            if reason in PERMANENT or (reason is not None and reason & 0xF000 == 0xC000):
                self.spool.reject(entry, "refused by the cloud", reason)
                self.state.rejected_one()
                by_digest.pop(entry.digest)
            else:
                last_error = f"the cloud could not store an instance now (FailureReason {reason:#06x})" \
                    if reason is not None else "the cloud could not store an instance now"
        self.state.sent(settled)
        if by_digest:
            self.state.failed(last_error or "the cloud did not answer for every instance")
        return bool(by_digest)


class Body:
    """An iterable with a length: requests then sends Content-Length, not chunked."""

    def __init__(self, chunks: Iterator[bytes], length: int):
        self.chunks, self.length = chunks, length

    def __iter__(self):
        return self.chunks

    def __len__(self) -> int:
        return self.length


def _uid(item: dict) -> str:
    return str((item.get(SOP_INSTANCE_UID, {}).get("Value") or [""])[0])


def _reason(item: dict) -> int | None:
    value = (item.get(FAILURE_REASON, {}).get("Value") or [None])[0]
    return int(value) if value is not None else None

