"""Upload the spool to the cloud by STOW-RS, oldest first, in batches; forget an instance
only once the cloud said it holds it.

- A batch is at most EDGE_BATCH_INSTANCES instances and EDGE_BATCH_BYTES bytes, streamed
  (chunked) from the sealed files as they are decrypted: memory is a segment or two
  whatever the study's size.
- The cloud's answer names each instance: stored, or already held (a retry after a cut
  connection sends the same bytes again, which the cloud answers as already held), comes
  off the queue; a permanent refusal (not DICOM, a bad UID, another instance under the
  same UID) goes to rejected/; anything else stays queued.
- No answer, a refused token, paused uploads, or a busy or unavailable server: nothing can
  go, so the uploader waits, 1 s doubling to `--max-backoff`, then tries again.
- Any other error answer fails the request, not the connection: each of its instances is
  then sent alone, so the one the cloud refuses is found. Alone and refused for good (400,
  413, 415, 422) it goes to rejected/; else it waits, doubling its own delay, while the
  instances behind it go on.
"""

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import requests

from edge.spool import DecryptionError, Entry, Spool, uid_digest
from edge.state import EdgeState

log = logging.getLogger(__name__)

STORED_SEQUENCE, FAILED_SEQUENCE = "00081199", "00081198"
SOP_INSTANCE_UID, FAILURE_REASON = "00081155", "00081197"
# Failure reasons that will not change on a retry (PS3.4 B.2.3, and CloudPACS's conflict).
PERMANENT = {0x0111, 0x0122, 0xA900, 0xC000, 0xC409}


class CloudUnavailable(Exception):
    """Nothing can be delivered now (no answer, the token or the account refused): the
    whole uploader waits."""


class BatchRefused(Exception):
    """The cloud answered this request with an error status and no STOW-RS body: something
    in it (one instance, maybe) is the cause, not the connection."""

    def __init__(self, status: int):
        super().__init__(f"the cloud answered HTTP {status}")
        self.status = status


class DamagedEntry(Exception):
    def __init__(self, entry: Entry, why: str):
        super().__init__(why)
        self.entry = entry


# An instance sent alone and answered with one of these will never be taken as it is.
REFUSED_FOR_GOOD = {400, 413, 415, 422}


@dataclass
class Hold:
    attempts: int = 0
    retry_at: float = 0.0
    alone: bool = False  # its batch failed as a whole: send it by itself to find the cause


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
        # Per spooled file: what went wrong with it, so one bad instance waits alone and
        # never holds the queue behind it.
        self.holds: dict[str, Hold] = {}

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            batch = self._batch()
            if not batch:
                self.wake.wait(min(5.0, self._next_retry_in()))
                self.wake.clear()
                continue
            try:
                self.deliver(batch)
            except CloudUnavailable as exc:
                self.state.failed(str(exc))
                self.backoff = min(self.max_backoff, max(1.0, self.backoff * 2))
                self.stopping.wait(self.backoff * random.uniform(0.8, 1.2))
                continue
            except BatchRefused as exc:
                self.state.failed(str(exc))
                self._refused(batch, exc.status)
            except DamagedEntry as exc:
                log.error("a spooled instance is damaged; kept in rejected/: %s", exc)
                self._reject(exc.entry, f"damaged in the spool: {exc}")
            self.backoff = 0.0

    def _next_retry_in(self) -> float:
        waits = [h.retry_at - time.monotonic() for h in self.holds.values() if h.retry_at]
        return max(0.1, min(waits)) if waits else 5.0

    def _batch(self) -> list[Entry]:
        """The oldest instances that may go now: up to the batch limits, one per SOP
        Instance UID (the answer names instances by UID), or one alone when it must be."""
        batch, size, digests, now = [], 0, set(), time.monotonic()
        for entry in self.spool.entries():
            hold = self.holds.get(entry.path.name)
            if hold and hold.retry_at > now:
                continue
            if not self.spool.sealed_here(entry):
                self.state.note_other_key()
                continue
            if hold and hold.alone:
                if not batch:
                    return [entry]
                continue
            if entry.digest in digests:
                continue
            if batch and (len(batch) >= self.batch_instances or size + entry.size > self.batch_bytes):
                break
            batch.append(entry)
            digests.add(entry.digest)
            size += entry.size
        return batch

    def _later(self, entry: Entry, *, alone: bool = False) -> None:
        hold = self.holds.setdefault(entry.path.name, Hold())
        hold.attempts += 1
        hold.alone = hold.alone or alone
        hold.retry_at = time.monotonic() + min(self.max_backoff, 2.0 ** hold.attempts) * random.uniform(0.8, 1.2)

    def _forget(self, entry: Entry) -> None:
        self.holds.pop(entry.path.name, None)

    def _reject(self, entry: Entry, reason: str, code: int | None = None) -> None:
        self.spool.reject(entry, reason, code)
        self.state.rejected_one()
        self._forget(entry)

    def _refused(self, batch: list[Entry], status: int) -> None:
        if len(batch) > 1:
            for entry in batch:  # each goes alone next, at once
                self.holds.setdefault(entry.path.name, Hold()).alone = True
        elif status in REFUSED_FOR_GOOD:
            self._reject(batch[0], f"refused by the cloud (HTTP {status})")
        else:
            self._later(batch[0], alone=True)

    def _body(self, batch: list[Entry], boundary: str) -> "Body":
        """The multipart/related body, streamed, with its length known beforehand: sent
        with Content-Length, as curl sends it, which every server and proxy takes (some
        refuse chunked uploads)."""
        part_head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        closing = f"--{boundary}--\r\n".encode()
        length = len(closing)
        for entry in batch:
            try:
                length += len(part_head) + self.spool.plain_size(entry) + 2
            except (DecryptionError, OSError) as exc:
                raise DamagedEntry(entry, str(exc)) from exc

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

    def deliver(self, batch: list[Entry]) -> None:
        """Send one batch and settle each instance by the cloud's answer."""
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
        if response.status_code in (429, 502, 503, 504):
            raise CloudUnavailable(f"the cloud is busy or down (HTTP {response.status_code})")
        try:
            answer = json.loads(response.content or b"{}") if response.status_code in (200, 202, 409) else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise BatchRefused(response.status_code)
        self._settle(batch, answer)

    def _settle(self, batch: list[Entry], answer: dict) -> None:
        by_digest = {entry.digest: entry for entry in batch}  # one entry per UID in a batch
        stored = [_uid(item) for item in answer.get(STORED_SEQUENCE, {}).get("Value", [])]
        failed = [(_uid(item), _reason(item)) for item in answer.get(FAILED_SEQUENCE, {}).get("Value", [])]
        settled = 0
        for uid in stored:
            entry = by_digest.pop(uid_digest(uid), None)
            if entry is not None:
                self.spool.done(entry)
                self._forget(entry)
                settled += 1
        last_error = ""
        for uid, reason in failed:
            entry = by_digest.get(uid_digest(uid)) if uid else None
            if entry is None:
                continue
            by_digest.pop(entry.digest)
            if reason in PERMANENT or (reason is not None and reason & 0xF000 == 0xC000):
                self._reject(entry, "refused by the cloud", reason)
            else:
                self._later(entry)
                last_error = f"the cloud could not store an instance now (FailureReason {reason:#06x})" \
                    if reason is not None else "the cloud could not store an instance now"
        self.state.sent(settled)
        for entry in by_digest.values():  # not named in the answer: alone next time, later
            self._later(entry, alone=len(batch) > 1)
        if by_digest and not last_error:
            last_error = "the cloud did not answer for every instance"
        if last_error:
            self.state.failed(last_error)


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

