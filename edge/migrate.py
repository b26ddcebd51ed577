"""Bringing a clinic's old archive in: `edge_gateway migrate --source AE@HOST:PORT`.

Study by study: C-FIND the old PACS (Study Root) for the studies, then for a study's
instances; skip a study whose every SOP Instance UID the cloud holds (QIDO-RS, when the
token may read), C-GET it into the spool (the same sealing as
C-STORE: durable before it counts), and let the uploader send it. A study is done once
none of its files is left in the queue. Progress and what is done are in the spool
(`migration.json`, study UIDs as digests only), so a restarted migration resumes: done
studies are skipped, retrieved ones are not fetched again. It ends with a report of the
studies that failed and why.
"""

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from pydicom import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from cloudpacs.dimse.pdu import MAX_PDU
from edge.receiver import make_store_handler
from edge.spool import Spool, uid_digest
from edge.state import EdgeState

UNCOMPRESSED = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
# What an old archive may hold, offered so that it never has to convert: the lossless and
# the uncompressed syntaxes together (any of them keeps every pixel), and each lossy one in
# a context of its own, which the old PACS uses only for what it holds in that syntax.
LOSSLESS = ["1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
            "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"]
LOSSY = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
         "1.2.840.10008.1.2.4.91"]
CONTEXTS_PER_CLASS = 2 + len(LOSSY)


class SourceError(Exception):
    """The old PACS could not be queried."""


def parse_source(text: str) -> tuple[str, str, int]:
    """`AE@HOST:PORT` -> (AE, host, port)."""
    try:
        ae_title, address = text.split("@", 1)
        host, port = address.rsplit(":", 1)
        port = int(port)
    except ValueError:
        raise ValueError("--source is AE@HOST:PORT, e.g. OLDPACS@192.168.1.10:104") from None
    if not (ae_title and host and 0 < port < 65536 and len(ae_title) <= 16):
        raise ValueError("--source is AE@HOST:PORT, e.g. OLDPACS@192.168.1.10:104")
    return ae_title, host, port


@dataclass
class Study:
    uid: str
    instances: int
    date: str = ""

    @property
    def digest(self) -> str:
        return uid_digest(self.uid)


@dataclass
class Progress:
    studies: int = 0
    instances: int = 0
    done_studies: int = 0
    done_instances: int = 0
    bytes: int = 0
    fetched: int = 0  # instances retrieved by this run (the rate and ETA are of these)
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # study UID -> why
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.bytes / elapsed
        left = max(self.instances - self.done_instances, 0)
        per_instance = elapsed / self.fetched if self.fetched else None
        eta = time.strftime("%H:%M:%S", time.gmtime(left * per_instance)) if per_instance else "-"
        return (f"studies {self.done_studies}/{self.studies} (skipped {self.skipped}, failed {len(self.failed)}), "
                f"instances {self.done_instances}/{self.instances} ({left} left), "
                f"{_human(self.bytes)} at {_human(rate)}/s, ETA {eta}")


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return f"{n:.1f} GB"


class MigrationState:
    """migration.json in the spool: per study digest, "retrieved" (with its spool files) or
    "done" or "failed"; written atomically after every change."""

    def __init__(self, spool: Spool, source: str):
        self.path = spool.root / "migration.json"
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}
        if self.data.get("source") != source:
            self.data = {"source": source, "studies": {}}

    def get(self, study: Study) -> dict:
        return self.data["studies"].get(study.digest, {})

    def set(self, study: Study, **entry) -> None:
        self.data["studies"][study.digest] = entry
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)


class Migration:
    def __init__(self, spool: Spool, state: EdgeState, *, source: str, cloud_url: str, token: str,
                 calling_ae: str, since: str = "", write: Callable[[str], None] = print,
                 wake: Callable[[], None] = lambda: None, spool_limit: int = 10 << 30):
        self.spool, self.state, self.write, self.wake = spool, state, write, wake
        self.source_ae, self.host, self.port = parse_source(source)
        self.cloud_url, self.token, self.calling_ae = cloud_url.rstrip("/"), token, calling_ae
        self.since, self.spool_limit = since, spool_limit
        self.record = MigrationState(spool, source)
        self.progress = Progress()
        self._can_ask_cloud = True

    # -- the old PACS ----------------------------------------------------------------------
    def _associate(self, contexts: list, roles: list | None = None, handlers: list | None = None):
        ae = AE(ae_title=self.calling_ae)
        ae.maximum_pdu_size = MAX_PDU
        ae.acse_timeout = ae.network_timeout = 30
        ae.dimse_timeout = 300
        for context in contexts:
            ae.add_requested_context(*context)
        assoc = ae.associate(self.host, self.port, ae_title=self.source_ae, ext_neg=roles or [],
                             evt_handlers=handlers or [])
        if not assoc.is_established:
            raise SourceError(f"{self.source_ae} at {self.host}:{self.port} did not accept an association")
        return assoc

    def _find(self, identifier: Dataset) -> list[Dataset]:
        """The answers to one C-FIND, on an association of its own."""
        assoc = self._associate([(StudyRootQueryRetrieveInformationModelFind,)])
        try:
            return self._answers(assoc, identifier)
        finally:
            assoc.release()

    def _answers(self, assoc, identifier: Dataset) -> list[Dataset]:
        answers = []
        for status, answer in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
            if status is None:
                raise SourceError("no answer to C-FIND (timed out or aborted)")
            if status.Status in (0xFF00, 0xFF01) and answer is not None:
                answers.append(answer)
            elif status.Status != 0x0000:
                raise SourceError(f"C-FIND failed with status {status.Status:#06x}")
        return answers

    def studies(self) -> list[Study]:
        answers = self._find(_identifier("STUDY", StudyInstanceUID="", NumberOfStudyRelatedInstances="",
                                         StudyDate=f"{self.since}-" if self.since else ""))
        found = {}
        for answer in answers:
            uid = str(answer.get("StudyInstanceUID", "")).strip()
            if uid:
                found[uid] = Study(uid, int(answer.get("NumberOfStudyRelatedInstances") or 0),
                                   str(answer.get("StudyDate", "") or ""))
        return sorted(found.values(), key=lambda s: (s.date, s.uid))

    def _instances(self, study: Study) -> dict[str, tuple[str, str]]:
        """{SOP Instance UID: (SOP Class UID, Series Instance UID)} of the study at the old PACS."""
        answers = self._find(_identifier("IMAGE", StudyInstanceUID=study.uid, SeriesInstanceUID="",
                                         SOPInstanceUID="", SOPClassUID=""))
        found = {str(a.SOPInstanceUID): (str(a.get("SOPClassUID", "") or ""), str(a.get("SeriesInstanceUID", "") or ""))
                 for a in answers if a.get("SOPInstanceUID")}
        study.instances = len(found) or study.instances
        return found

    def _queries(self, study: Study, instances: dict[str, tuple[str, str]], missing: set[str]) -> list[Dataset]:
        """The C-GET identifiers for what the cloud lacks: the study, or the series, or the
        instances of a series (a copy the cloud holds already is not fetched again: the old
        PACS's copy differs in its file meta, and the cloud would refuse it as a conflict)."""
        if missing == set(instances):
            return [_identifier("STUDY", StudyInstanceUID=study.uid)]
        queries = []
        for series in sorted({series for _, series in instances.values()}):
            of_series = {uid for uid, (_, s) in instances.items() if s == series}
            wanted = of_series & missing
            if wanted == of_series:
                queries.append(_identifier("SERIES", StudyInstanceUID=study.uid, SeriesInstanceUID=series))
            elif wanted:
                queries.append(_identifier("IMAGE", StudyInstanceUID=study.uid, SeriesInstanceUID=series,
                                           SOPInstanceUID=sorted(wanted)))
        return queries

    def _get(self, study: Study, sop_classes: set[str], queries: list[Dataset], expected: int
             ) -> tuple[list[str], str | None]:
        """C-GET into the spool: (the spool files made, why it failed or None)."""
        names: list[str] = []
        def spooled(entry) -> None:
            names.append(entry.path.name)
            self.progress.fetched += 1
            self.progress.bytes += entry.size

        handle = make_store_handler(self.spool, self.state, on_spooled=self.wake, on_entry=spooled)
        classes = sorted(sop_classes)[:127 // CONTEXTS_PER_CLASS]  # within PS3.8's 128 contexts
        if len(classes) < len(sop_classes):
            return names, f"{len(sop_classes)} SOP classes in one study: more than one association can offer"
        contexts = [(StudyRootQueryRetrieveInformationModelGet,)]
        for sop_class in classes:
            contexts += [(sop_class, UNCOMPRESSED), (sop_class, LOSSLESS)]
            contexts += [(sop_class, [ts]) for ts in LOSSY]
        roles = [build_role(sop_class, scp_role=True) for sop_class in classes]
        assoc = self._associate(contexts, roles, [(evt.EVT_C_STORE, handle)])
        try:
            for query in queries:
                final = None
                for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
                    if status is not None and status.Status not in (0xFF00, 0xFF01):
                        final = status
                if final is None:
                    return names, "the old PACS ended the retrieve without a final status"
                failed = int(final.get("NumberOfFailedSuboperations") or 0)
                if final.Status not in (0x0000, 0xB000) or failed:
                    return names, f"C-GET status {final.Status:#06x}, {failed} instances not retrieved"
        finally:
            assoc.release()
        if len(names) < expected:
            return names, f"{len(names)} of {expected} instances retrieved"
        return names, None

    # -- the cloud -------------------------------------------------------------------------
    def in_cloud(self, study: Study) -> set[str]:
        """The SOP Instance UIDs of the study the cloud holds; none when it cannot be asked
        (the token may only upload): the study is then sent whole."""
        if not self._can_ask_cloud:
            return set()
        held: set[str] = set()
        offset = 0
        while True:
            try:
                answer = requests.get(f"{self.cloud_url}/studies/{study.uid}/instances", timeout=30,
                                      params={"includefield": "00080018", "limit": 1000, "offset": offset},
                                      headers={"Authorization": f"Bearer {self.token}",
                                               "Accept": "application/dicom+json"})
            except requests.RequestException:
                return set()
            if answer.status_code in (401, 403):
                self._can_ask_cloud = False
                self.write("note: the token may not read, so studies already in the cloud are sent again "
                           "(the cloud keeps one copy); give it the read scope to skip them")
                return set()
            if answer.status_code != 200 or not answer.content:
                return held
            page = answer.json()
            held |= {str((item.get("00080018", {}).get("Value") or [""])[0]) for item in page}
            if len(page) < 1000:
                return held
            offset += len(page)

    # -- the run ---------------------------------------------------------------------------
    def _wait_for_room(self) -> None:
        while sum(e.size for e in self.spool.entries()) > self.spool_limit:
            self.state.note_migration(waiting="the spool is full: waiting for uploads")
            time.sleep(2)

    def _settled(self, study: Study, names: list[str]) -> bool:
        queued = {e.path.name for e in self.spool.entries()}
        return not any(name in queued for name in names)

    def run(self, stop: threading.Event) -> Progress:
        studies = self.studies()
        self.progress.studies = len(studies)
        self.progress.instances = sum(s.instances for s in studies)
        self.write(f"{len(studies)} studies at {self.source_ae}" + (f" since {self.since}" if self.since else ""))
        waiting: list[tuple[Study, list[str]]] = []
        for study in studies:
            if stop.is_set():
                break
            record = self.record.get(study)
            if record.get("state") == "done":
                self._count_done(study, skipped=record.get("skipped", False))
                continue
            if record.get("state") == "retrieved":
                waiting.append((study, record["files"]))
                continue
            try:
                instances = self._instances(study)
                missing = set(instances) - self.in_cloud(study)
                if instances and not missing:
                    self.record.set(study, state="done", skipped=True)
                    self._count_done(study, skipped=True)
                    continue
                self._wait_for_room()
                names, error = self._get(study, {c for c, _ in instances.values() if c},
                                         self._queries(study, instances, missing), len(missing))
            except SourceError as exc:
                names, error = [], str(exc)
            if error:
                self.progress.failed[study.uid] = error
                self.record.set(study, state="failed", why=error, files=names)
                self.write(f"study failed: {error}")
            else:
                self.record.set(study, state="retrieved", files=names)
                waiting.append((study, names))
            waiting = self._finish_settled(waiting)
            self.write(self.progress.line())
        while waiting and not stop.is_set():
            waiting = self._finish_settled(waiting)
            if waiting:
                stop.wait(1)
        if waiting:
            self.write(f"stopped with {len(waiting)} studies still uploading: run migrate again to finish")
        self.write(self.progress.line())
        return self.progress

    def _finish_settled(self, waiting):
        still, settled = [], []
        for study, names in waiting:
            (settled if self._settled(study, names) else still).append((study, names))
        # The notes are read after the queue: a file that had left it then was sent, or
        # noted as refused before it left (Spool.reject). Read before, a refusal between
        # the two reads counted the study done.
        rejected = {note["file"] for note in self.spool.rejected_entries()} if settled else set()
        for study, names in settled:
            refused = [n for n in names if n in rejected]
            if refused:
                why = f"the cloud refused {len(refused)} instances (kept in the spool's rejected folder)"
                self.progress.failed[study.uid] = why
                self.record.set(study, state="failed", why=why, files=names)
            else:
                self.record.set(study, state="done")
                self._count_done(study)
        self.state.note_migration(done=self.progress.done_studies, total=self.progress.studies,
                                  failed=len(self.progress.failed))
        return still

    def _count_done(self, study: Study, skipped: bool = False) -> None:
        self.progress.done_studies += 1
        self.progress.done_instances += study.instances
        self.progress.skipped += skipped


def _identifier(level: str, **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def report(progress: Progress) -> str:
    lines = [f"migration: {progress.done_studies} of {progress.studies} studies in the cloud "
             f"({progress.skipped} were there already), {len(progress.failed)} failed"]
    lines += [f"  failed: {uid}: {why}" for uid, why in progress.failed.items()]
    return "\n".join(lines)

