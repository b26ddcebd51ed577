"""The edge gateway's DICOM side: C-ECHO and C-STORE from the clinic's modalities. A
received instance is checked (a DICOM header with valid UIDs), sealed into the spool and
only then acknowledged; refused instances are not spooled, and what a peer stopped sending
mid-transfer is removed when its association ends."""

import logging
import tempfile
import threading
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from cloudpacs.dimse import contexts, uids
from cloudpacs.dimse.pdu import MAX_PDU
from cloudpacs.dimse.serving import GatewayRequestHandler, GatewayServer, received_data_set_owned
from edge.spool import Spool
from edge.state import EdgeState

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
INVALID = 0xA900


def _valid_uid(value) -> bool:
    from pydicom.uid import UID

    value = str(value or "").rstrip("\0 ")
    return bool(value) and len(value) <= 64 and UID(value).is_valid


def _status(code: int, comment: str):
    from pydicom import Dataset

    ds = Dataset()
    ds.Status, ds.ErrorComment = code, comment[:64]
    return ds


def make_store_handler(spool: Spool, state: EdgeState, on_spooled, on_entry=None):
    @received_data_set_owned  # sealed into the queue or refused, the plaintext goes
    def handle_store(event):
        path = Path(event.dataset_path)
        try:
            header = dcmread(path, stop_before_pixels=True, specific_tags=[
                "SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"])
        except (InvalidDicomError, ValueError, OSError, EOFError) as exc:
            return _status(CANNOT_UNDERSTAND, f"not a readable DICOM data set: {type(exc).__name__}")
        for keyword in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"):
            if not _valid_uid(header.get(keyword)):
                return _status(INVALID, f"{keyword} missing or not a UID")
        try:
            entry = spool.put(path, str(header.SOPInstanceUID).rstrip("\0 "))
        except OSError:
            log.exception("could not seal a received instance into the spool")
            return _status(OUT_OF_RESOURCES, "the edge spool could not store it")
        state.received()
        if on_entry is not None:
            on_entry(entry)
        on_spooled()
        return SUCCESS

    return handle_store


def receive_to_spool(spool: Spool) -> None:
    """pynetdicom writes a data set it receives (as C-STORE SCP, or during a C-GET) to a
    file in the spool's incoming folder, never to memory."""
    _config.STORE_RECV_CHUNKED_DATASET = True
    tempfile.tempdir = str(spool.incoming)
    uids.install()  # the migration's associations too, with or without a receiving port


def start_receiver(spool: Spool, state: EdgeState, *, host: str, port: int, ae_title: str,
                   on_spooled, allowed: list[str] | None = None) -> ThreadedAssociationServer:
    receive_to_spool(spool)
    _config.UNRESTRICTED_STORAGE_SERVICE = True
    contexts.install()
    ae = AE(ae_title=ae_title)
    ae.require_called_aet = False
    if allowed:
        ae.require_calling_aet = [title.strip().upper() for title in allowed]  # others are rejected
    ae.maximum_pdu_size = MAX_PDU
    ae.network_timeout, ae.dimse_timeout, ae.acse_timeout = 60, 120, 30
    ae.add_supported_context(Verification)
    handlers = [(evt.EVT_C_ECHO, lambda event: SUCCESS),
                (evt.EVT_C_STORE, make_store_handler(spool, state, on_spooled))]
    server = ae.make_server((host, port), evt_handlers=handlers, server_class=GatewayServer,
                            request_handler=GatewayRequestHandler)
    ae._servers.append(server)  # as AE.start_server does, so server.shutdown() can detach it
    threading.Thread(target=server.serve_forever, name="edge-dicom", daemon=True).start()
    return server
