"""Storage Commitment Push Model (PS3.4 J.3): a modality asks, by N-ACTION, that we take
responsibility for instances it sent; we answer by N-EVENT-REPORT, and it may delete its
own copies of those we committed. So an instance is committed only once it is verified in
both regions; one that is not in the archive fails at once (0112H); one still being
archived keeps the answer waiting, until DICOM_COMMIT_TIMEOUT_HOURS, when it fails (0110H).

The report goes back on the requester's association while it is open (the gateway watches
for DICOM_COMMIT_WAIT_SECONDS), else on a new association to the requester's address on
the DICOM peers page: the outbox's `commit` work, on the workers. A claim on the row makes
sure one of the two sends it.
"""

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from pydicom import Dataset
from pynetdicom import AE, build_role
from pynetdicom.pdu_primitives import A_ABORT, A_P_ABORT, A_RELEASE
from pynetdicom.sop_class import StorageCommitmentPushModel

from archive.gateway.destinations import DestinationRefused, destination_check
from archive.gateway.models import StorageCommitment, destination_get
from archive.models import Instance
from archive.outbox.models import Outbox
from archive.outbox.services import outbox_add, outbox_publish
from archive.storage.selectors import instances_verified_everywhere
from archive.uids import is_valid_uid, strip_uid_padding
from tenants.audit import Actor, audit_record

log = logging.getLogger(__name__)

COMMIT = "commit"  # the outbox kind
WELL_KNOWN_INSTANCE = "1.2.840.10008.1.20.1.1"  # PS3.4 J.3.5
REQUEST_STORAGE_COMMITMENT = 1  # N-ACTION Action Type ID
ALL_COMMITTED, SOME_FAILED = 1, 2  # N-EVENT-REPORT Event Type ID
WATCH_INTERVAL = 0.25  # seconds between the gateway's looks at a request it watches

# N-ACTION statuses (PS3.7 C) and Failure Reasons (PS3.4 J.3.2.1.1.1)
PROCESSING_FAILURE = 0x0110
NO_SUCH_OBJECT = 0x0112
INVALID_ARGUMENT = 0x0115
NO_SUCH_SOP_INSTANCE = 0x0117
CLASS_INSTANCE_CONFLICT = 0x0119
MISSING_ATTRIBUTE = 0x0120
NO_SUCH_ACTION = 0x0123


class CommitmentRefused(Exception):
    def __init__(self, status: int, comment: str):
        super().__init__(comment)
        self.status, self.comment = status, comment


def _uid(ds: Dataset, keyword: str) -> str:
    value = strip_uid_padding(str(ds.get(keyword, "") or ""))
    if not value:
        raise CommitmentRefused(MISSING_ATTRIBUTE, f"{keyword} is missing")
    if not is_valid_uid(value):
        raise CommitmentRefused(INVALID_ARGUMENT, f"{keyword} is not a UID")
    return value


def commitment_request(*, tenant, requester_ae: str, action_type: int, instance_uid: str,
                       info: Dataset | None, actor: Actor, watched: bool = False) -> StorageCommitment:
    """Record a request (N-ACTION) and queue its report; CommitmentRefused if it is malformed.
    The same transaction sent again by the same modality is the same request."""
    if action_type != REQUEST_STORAGE_COMMITMENT:
        raise CommitmentRefused(NO_SUCH_ACTION, "only Request Storage Commitment (1)")
    if strip_uid_padding(str(instance_uid or "")) != WELL_KNOWN_INSTANCE:
        raise CommitmentRefused(NO_SUCH_SOP_INSTANCE, f"the SOP instance is {WELL_KNOWN_INSTANCE}")
    if info is None or "ReferencedSOPSequence" not in info or not info.ReferencedSOPSequence:
        raise CommitmentRefused(MISSING_ATTRIBUTE, "ReferencedSOPSequence is missing or empty")
    transaction_uid = _uid(info, "TransactionUID")
    if len(info.ReferencedSOPSequence) > settings.DICOM_COMMIT_MAX_ITEMS:
        raise CommitmentRefused(PROCESSING_FAILURE, f"more than {settings.DICOM_COMMIT_MAX_ITEMS} instances")
    items = [[_uid(item, "ReferencedSOPClassUID"), _uid(item, "ReferencedSOPInstanceUID")]
             for item in info.ReferencedSOPSequence]
    try:
        with transaction.atomic():
            commitment = StorageCommitment.objects.for_tenant(tenant).create(
                transaction_uid=transaction_uid, requester_ae=requester_ae, items=items, watched=watched)
            outbox_add(tenant=tenant, kind=COMMIT, subjects=[commitment.pk])
            audit_record(tenant=tenant, actor=actor, action="dicom.commitment_requested",
                         obj_type="storage_commitment", obj_id=commitment.pk,
                         detail={"instances": len(items), "requester": requester_ae})
    except IntegrityError:  # asked again: the first request stands
        commitment = StorageCommitment.objects.for_tenant(tenant).get(
            requester_ae=requester_ae, transaction_uid=transaction_uid)
    return commitment


@dataclass
class Outcome:
    committed: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, int]] = field(default_factory=list)
    pending: int = 0

    @property
    def final(self) -> bool:
        return self.pending == 0


def commitment_outcome(commitment: StorageCommitment) -> Outcome:
    """Each item: committed (verified in every region), failed (not here, another class),
    or pending. Past DICOM_COMMIT_TIMEOUT_HOURS the pending ones fail."""
    uids = [uid for _, uid in commitment.items]
    stored = {row["sop_instance_uid"]: row for row in Instance.objects.for_tenant(commitment.tenant)
              .filter(sop_instance_uid__in=uids).values("pk", "sop_instance_uid", "sop_class_uid")}
    verified = set(instances_verified_everywhere([row["pk"] for row in stored.values()]))
    expired = timezone.now() - commitment.requested_at > timedelta(hours=settings.DICOM_COMMIT_TIMEOUT_HOURS)
    outcome = Outcome()
    for sop_class, uid in commitment.items:
        row = stored.get(uid)
        if row is None:
            outcome.failed.append((sop_class, uid, NO_SUCH_OBJECT))
        elif row["sop_class_uid"] != sop_class:
            outcome.failed.append((sop_class, uid, CLASS_INSTANCE_CONFLICT))
        elif row["pk"] in verified:
            outcome.committed.append((sop_class, uid))
        elif expired:
            outcome.failed.append((sop_class, uid, PROCESSING_FAILURE))
        else:
            outcome.pending += 1
    return outcome


def event_report(commitment: StorageCommitment, outcome: Outcome, retrieve_ae: str) -> tuple[int, Dataset]:
    """(Event Type ID, Event Information) of the N-EVENT-REPORT (PS3.4 J.3.3)."""
    ds = Dataset()
    ds.TransactionUID = commitment.transaction_uid
    ds.RetrieveAETitle = retrieve_ae
    if outcome.committed:
        ds.ReferencedSOPSequence = [_item(sop_class, uid) for sop_class, uid in outcome.committed]
    if outcome.failed:
        ds.FailedSOPSequence = [_item(sop_class, uid, FailureReason=reason) for sop_class, uid, reason in outcome.failed]
    return (SOME_FAILED if outcome.failed else ALL_COMMITTED), ds


def _item(sop_class: str, uid: str, **extra) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = uid
    for keyword, value in extra.items():
        setattr(item, keyword, value)
    return item


def commitment_claim(commitment: StorageCommitment) -> bool:
    """Take the right to send the report: one sender, the gateway or a worker. A claim left
    by a killed process is taken over after ten minutes."""
    stale = timezone.now() - timedelta(minutes=10)
    qs = StorageCommitment.unscoped.filter(pk=commitment.pk)
    claimed = (qs.filter(state=StorageCommitment.PENDING) | qs.filter(state=StorageCommitment.SENDING,
                                                                      claimed_at__lt=stale))
    return claimed.update(state=StorageCommitment.SENDING, claimed_at=timezone.now()) == 1


def _report_done(commitment: StorageCommitment, outcome: Outcome, on: str) -> None:
    StorageCommitment.unscoped.filter(pk=commitment.pk).update(
        state=StorageCommitment.REPORTED, reported_at=timezone.now(), reported_on=on,
        committed=len(outcome.committed), failed=len(outcome.failed), last_error="")
    audit_record(tenant=commitment.tenant, actor=Actor.system("storage commitment"),
                 action="dicom.commitment_reported", obj_type="storage_commitment", obj_id=commitment.pk,
                 detail={"committed": len(outcome.committed), "failed": len(outcome.failed), "on": on,
                         "requester": commitment.requester_ae})


def _report_not_sent(commitment: StorageCommitment, error: str) -> None:
    StorageCommitment.unscoped.filter(pk=commitment.pk).update(
        state=StorageCommitment.PENDING, claimed_at=None, last_error=error[:2000])


def report_send(assoc, commitment: StorageCommitment, outcome: Outcome, *, on: str) -> None:
    """Send the report on `assoc` (claimed already); record it, or give the claim back and
    raise."""
    event_type, info = event_report(commitment, outcome, commitment.tenant.ae_title)
    try:
        status, _ = assoc.send_n_event_report(info, event_type, StorageCommitmentPushModel, WELL_KNOWN_INSTANCE)
        code = getattr(status, "Status", None)
        if code != 0x0000:
            raise ConnectionError(f"the requester answered the report with {code if code is None else hex(code)}")
    except Exception as exc:
        _report_not_sent(commitment, f"{type(exc).__name__}: {exc}")
        raise
    _report_done(commitment, outcome, on)


def report_to_peer(commitment: StorageCommitment, outcome: Outcome) -> None:
    """Send the report on a new association to the requester's address (we call as the
    clinic, in the SCP role of the Storage Commitment class, PS3.4 J.3.3.1.2)."""
    peer = destination_get(commitment.tenant, commitment.requester_ae)
    if peer is None:
        _report_not_sent(commitment, f"{commitment.requester_ae} has no host and port on the DICOM peers page")
        raise ConnectionError(f"no address for {commitment.requester_ae}")
    try:
        destination_check(peer.host, peer.port)
    except DestinationRefused as exc:
        _report_not_sent(commitment, str(exc))
        raise
    ae = AE(ae_title=commitment.tenant.ae_title)
    ae.add_requested_context(StorageCommitmentPushModel)
    ae.acse_timeout = ae.network_timeout = 30
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title,
                         ext_neg=[build_role(StorageCommitmentPushModel, scp_role=True)])
    if not assoc.is_established:
        _report_not_sent(commitment, f"{peer.ae_title} at {peer.host}:{peer.port} did not accept an association")
        raise ConnectionError(f"could not associate with {peer.ae_title}")
    try:
        report_send(assoc, commitment, outcome, on="new association")
    finally:
        assoc.release()


def _peer_leaving(assoc) -> bool:
    """Has the requester released or aborted (seen without taking it off the queue, which
    the association's own loop does)?"""
    return not assoc.is_established or isinstance(assoc.dul.peek_next_pdu(), (A_RELEASE, A_ABORT, A_P_ABORT))


def _idle(assoc) -> bool:
    """Nothing from the requester waiting to be served: the report waits for its answer on
    the association, and a request arriving meanwhile (a C-STORE) would be taken for it.
    A request can still arrive in the instant after this look; then the report counts as
    not sent and goes on a new association."""
    return assoc.dimse.msg_queue.empty() and assoc.dul.peek_next_pdu() is None


def watch_and_report(assoc, commitment_id: int) -> None:
    """A gateway thread per request: answer on the requester's association if every instance
    is decided while it stays open (for at most DICOM_COMMIT_WAIT_SECONDS); else hand the
    report to the workers at once. pynetdicom pauses the association's loop while a report
    is sent from here."""
    from django.db import connection

    deadline = time.monotonic() + settings.DICOM_COMMIT_WAIT_SECONDS
    sent = False
    try:
        while time.monotonic() < deadline and not _peer_leaving(assoc):
            # Each look waits first: the N-ACTION response goes out before any report.
            time.sleep(WATCH_INTERVAL)
            commitment = StorageCommitment.unscoped.select_related("tenant").get(pk=commitment_id)
            if commitment.state != StorageCommitment.PENDING:
                return
            outcome = commitment_outcome(commitment)
            if outcome.final and not _peer_leaving(assoc) and _idle(assoc):
                if commitment_claim(commitment):
                    report_send(assoc, commitment, outcome, on="association")
                    sent = True
                return
    except Exception:  # noqa: BLE001 - the workers send it instead
        log.warning("storage commitment %s: no report on the requester's association", commitment_id,
                    exc_info=True)
    finally:
        StorageCommitment.unscoped.filter(pk=commitment_id).update(watched=False)
        if not sent:
            outbox_publish(list(Outbox.unscoped.filter(kind=COMMIT, subject_id=commitment_id, done_at=None)
                                .values_list("pk", flat=True)))
        connection.close()


_watchers = threading.BoundedSemaphore(max(settings.DICOM_COMMIT_MAX_WATCHERS, 1))


def watch_slot() -> bool:
    """May the gateway watch one more request? At most DICOM_COMMIT_MAX_WATCHERS at once
    per process (each is a thread and a database connection); beyond, the workers report."""
    return settings.DICOM_COMMIT_WAIT_SECONDS > 0 and _watchers.acquire(blocking=False)


def watch_start(assoc, commitment: StorageCommitment | None, slot: bool) -> None:
    """Start watching with the slot taken (marked `watched` when the row was made, so a
    worker never reports it meanwhile); give the slot back if there is nothing to watch."""
    if not slot:
        return
    if commitment is None or not commitment.watched or commitment.state != StorageCommitment.PENDING:
        _watchers.release()
        return

    def run() -> None:
        try:
            watch_and_report(assoc, commitment.pk)
        finally:
            _watchers.release()

    threading.Thread(target=run, daemon=True, name=f"commitment-{commitment.pk}").start()
