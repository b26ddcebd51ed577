"""pynetdicom event handlers: small functions that return a DICOM status and call the
same ingest service as STOW-RS."""

import logging

from django.db import close_old_connections, connection
from pynetdicom.sop_class import StorageCommitmentPushModel

from archive.gateway import commitment, find, retrieve
from archive.gateway.destinations import DestinationRefused, destination_check
from archive.gateway.models import destination_get
from archive.ingest import errors
from archive.ingest.hooks import upload_refusal
from archive.ingest.service import IngestContext, Outcome, instance_ingest
from archive.ingest.spool import SpooledFile, TooLarge
from archive.storage.durability import StorageUnavailable
from cloudpacs.dimse.serving import received_data_set_owned
from tenants.audit import Actor, audit_record

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
REFUSED_NOT_AUTHORIZED = 0x0124
SOP_CLASS_NOT_SUPPORTED = 0x0122
NO_SUCH_SOP_CLASS = 0x0118


def _state(assoc) -> dict:
    # Per-association counters, read when the association ends to write one audit event.
    if not hasattr(assoc, "cloudpacs"):
        assoc.cloudpacs = {"stored": 0, "present": 0, "conflict": 0, "failed": 0, "studies": set(),
                           "context": IngestContext()}
    return assoc.cloudpacs


def actor_for(event) -> Actor:
    assoc = event.assoc
    calling = assoc.requestor.ae_title.strip()
    return Actor("dicom", calling, f"DICOM peer {calling}", assoc.requestor.address, "")


def handle_echo(event) -> int:
    return SUCCESS


def handle_find(event):
    """C-FIND: the clinic's matches (archive.gateway.find), audited as a read of patient
    data: who asked, at which level, on which keys, how many answers."""
    tenant = getattr(event.assoc, "cloudpacs_tenant", None)
    if tenant is None:
        yield REFUSED_NOT_AUTHORIZED, None
        return
    if event.request.AffectedSOPClassUID not in find.MODELS:
        # The gateway takes any storage SOP class, so a peer may get a context of another
        # model accepted (Modality Worklist, say): its C-FIND is refused, not answered.
        yield SOP_CLASS_NOT_SUPPORTED, None
        return
    close_old_connections()
    identifier = event.identifier
    answers = 0
    try:
        for status, answer in find.find_answers(tenant=tenant, identifier=identifier,
                                           is_cancelled=lambda: event.is_cancelled):
            answers += answer is not None
            yield status, answer
    finally:
        audit_record(tenant=tenant, actor=actor_for(event), action="dicom.find", obj_type="query", detail={
            "model": str(event.request.AffectedSOPClassUID), "answers": answers,
            "level": str(identifier.get("QueryRetrieveLevel", "")),
            "keys": sorted(f"{e.tag:08X}" for e in identifier)[:50]})


def _refusal(status: int, comment: str):
    # What a C-GET / C-MOVE handler yields to end the operation with a failure status:
    # pynetdicom wants at least one sub-operation announced before a status.
    return _status(status, comment), None


def _retrieve_audit(event, tenant, *, action: str, level: str, instances: list, **detail) -> None:
    """One audit event per retrieve, written before the first instance goes out: who took
    which studies, how many instances, and (for a move) where to."""
    studies = sorted({inst.study_id for inst in instances})
    audit_record(tenant=tenant, actor=actor_for(event), action=action, obj_type="study",
                 obj_id=studies[0] if studies else None,
                 detail={"model": str(event.request.AffectedSOPClassUID), "level": level,
                         "instances": len(instances), "studies": studies[:100], **detail})


def handle_get(event):
    """C-GET: the matching instances go back over the requester's own association, as
    C-STORE sub-operations on the storage contexts it offered."""
    tenant = getattr(event.assoc, "cloudpacs_tenant", None)
    if tenant is None or event.request.AffectedSOPClassUID not in retrieve.GET_MODELS:
        yield 1
        yield _refusal(SOP_CLASS_NOT_SUPPORTED, "not a C-GET model this gateway serves")
        return
    close_old_connections()
    try:
        level, instances = retrieve.retrieve_instances(tenant=tenant, identifier=event.identifier,
                                                       model=event.request.AffectedSOPClassUID)
    except retrieve.RetrieveRefused as exc:
        yield 1
        yield _refusal(exc.status, exc.comment)
        return
    _retrieve_audit(event, tenant, action="dicom.get", level=level, instances=instances)
    yield len(instances)
    yield from retrieve.datasets_for(event.assoc, instances, lambda: event.is_cancelled)


def handle_move(event):
    """C-MOVE: the matching instances go to one of the clinic's destinations (an unknown
    one is 0xA801), on a new association calling with the clinic's AE title."""
    tenant = getattr(event.assoc, "cloudpacs_tenant", None)
    model = event.request.AffectedSOPClassUID
    destination = destination_get(tenant, event.move_destination) if tenant is not None else None
    if destination is not None:
        try:
            destination_check(destination.host, destination.port)
        except DestinationRefused as exc:
            log.warning("C-MOVE destination refused: %s", exc)
            destination = None
    if destination is None or model not in retrieve.MOVE_MODELS:
        log.info("C-MOVE to an unknown destination refused")
        yield None, None  # pynetdicom answers 0xA801
        return
    close_old_connections()
    # pynetdicom asks the association's AE for the sub-association and names it as the
    # move originator: that AE must call with the clinic's title, not the gateway's. The
    # gateway's AE is put back when the move ends (it counts the open associations).
    gateway_ae = event.assoc.ae
    event.assoc._ae = retrieve.ae_calling_as(gateway_ae, tenant.ae_title)  # Association.ae has no setter
    try:
        yield from _move(event, tenant, model, destination)
    finally:
        event.assoc._ae = gateway_ae


def _move(event, tenant, model, destination):
    level, instances, refused = "", [], None
    try:
        level, instances = retrieve.retrieve_instances(tenant=tenant, identifier=event.identifier, model=model)
    except retrieve.RetrieveRefused as exc:
        refused = exc
    if refused is not None or not instances:
        # No sub-association for nothing to send; pynetdicom answers success on zero, and
        # an exception here is its "unable to process" (C513): the nearest it has to A900.
        yield destination.host, destination.port
        if refused is not None:
            raise refused
        yield 0
        return
    _retrieve_audit(event, tenant, action="dicom.move", level=level, instances=instances,
                    destination=destination.ae_title)
    yield destination.host, destination.port, {"contexts": retrieve.move_contexts(instances)}
    yield len(instances)
    # Runs on pynetdicom's next(), after it opened the sub-association with the contexts above.
    yield from retrieve.datasets_for(event.assoc.ae.sub_association, instances, lambda: event.is_cancelled)


def handle_n_action(event):
    """Storage commitment (N-ACTION): recorded, acknowledged, and reported later
    (archive.gateway.commitment)."""
    tenant = getattr(event.assoc, "cloudpacs_tenant", None)
    if tenant is None:
        return REFUSED_NOT_AUTHORIZED, None
    if event.request.RequestedSOPClassUID != StorageCommitmentPushModel:
        return NO_SUCH_SOP_CLASS, None
    close_old_connections()
    try:
        info = event.action_information
    except Exception:  # noqa: BLE001 - an undecodable data set
        return _status(commitment.PROCESSING_FAILURE, "the action information cannot be decoded"), None
    slot = commitment.watch_slot()
    try:
        request = commitment.commitment_request(
            tenant=tenant, requester_ae=event.assoc.requestor.ae_title.strip(), info=info,
            action_type=event.request.ActionTypeID, instance_uid=event.request.RequestedSOPInstanceUID,
            actor=actor_for(event), watched=slot)
    except commitment.CommitmentRefused as exc:
        commitment.watch_start(event.assoc, None, slot)
        return _status(exc.status, exc.comment), None
    commitment.watch_start(event.assoc, request, slot)
    return SUCCESS, None


@received_data_set_owned
def handle_store(event) -> int | tuple:
    tenant = getattr(event.assoc, "cloudpacs_tenant", None)
    if tenant is None:  # cannot happen: associations are admitted per clinic
        return REFUSED_NOT_AUTHORIZED
    close_old_connections()
    counters = _state(event.assoc)
    refusal = upload_refusal(tenant)
    if refusal:  # billing's grace ended unpaid: nothing is stored
        counters["failed"] += 1
        return _status(REFUSED_NOT_AUTHORIZED, "uploads paused: payment overdue")
    try:
        spooled = SpooledFile.adopt(event.dataset_path)
    except TooLarge as exc:
        counters["failed"] += 1
        return _status(OUT_OF_RESOURCES, f"instance is {exc}")
    except OSError:
        log.exception("could not take over a received dataset")
        return OUT_OF_RESOURCES
    try:
        result = instance_ingest(tenant=tenant, spooled=spooled, actor=actor_for(event),
                                 context=counters["context"])
    except StorageUnavailable:
        # Out of resources: a modality keeps the instance and sends it again later.
        counters["failed"] += 1
        return _status(errors.OUT_OF_RESOURCES, "no storage region reachable; send again later")
    except Exception:
        log.exception("C-STORE ingest failed")
        counters["failed"] += 1
        return errors.PROCESSING_FAILURE
    if result.study_instance_uid:
        counters["studies"].add(result.study_instance_uid)
    if result.outcome == Outcome.STORED:
        counters["stored"] += 1
        return SUCCESS
    if result.outcome == Outcome.ALREADY_PRESENT:
        counters["present"] += 1
        return SUCCESS
    if result.outcome == Outcome.CONFLICT:
        # A failure, as STOW-RS answers it: a warning (B000H) counts as stored for most
        # modalities, which may then delete the only copy of the content we did not keep.
        counters["conflict"] += 1
        return _status(errors.DUPLICATE_SOP_INSTANCE, result.reason)
    counters["failed"] += 1
    return _status(result.failure_code or errors.CANNOT_UNDERSTAND, result.reason)


def _status(code: int, comment: str):
    from pydicom.dataset import Dataset

    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]
    return status


def handle_association_end(event) -> None:
    """One audit event per association that stored anything; then free the DB connection."""
    tenant = getattr(event.assoc, "cloudpacs_tenant", None)
    counters = getattr(event.assoc, "cloudpacs", None)
    try:
        if tenant is not None and counters is not None:
            audit_record(tenant=tenant, actor=actor_for(event), action="dimse.store", obj_type="association",
                         detail={**{k: v for k, v in counters.items() if k not in ("studies", "context")},
                                 "studies": sorted(counters["studies"])[:100]})
    finally:
        connection.close()
