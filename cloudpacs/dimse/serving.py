"""How both gateways (the cloud's and the on-site edge's) serve a connection, where
pynetdicom alone would let one peer hurt the others:

- A PDU is read whole into memory, at the length the peer announces (up to 4 GiB), before
  anything else is checked: a connection announcing more than MAX_PDU (plus room for a
  large A-ASSOCIATE-RQ) is closed instead.
- pynetdicom does the TLS handshake in the thread that accepts connections: one peer that
  connects and sends nothing would stop every other. The handshake happens in the
  connection's own thread here, within HANDSHAKE_SECONDS.
- pynetdicom deep-copies the server's presentation contexts for every association, to
  protect them from its changes. With every storage class accepted in every transfer
  syntax that is 6,662 UID objects copied one by one: 22 ms of CPU per association, most
  of what an association that stores one image costs (many modalities open one per image).
  The contexts are copied here as the immutable UIDs they hold allow: each context and its
  list, not each UID.
- An association's two threads wait for their socket and queues instead of polling them
  every millisecond (cloudpacs.dimse.reactors).
- A data set the peer did not finish sending (an A-ABORT, a dropped connection, a timeout
  in the middle of a C-STORE) is removed when its association ends: pynetdicom writes a
  received data set to a temporary file as it arrives and removes it after the C-STORE
  handler, but leaves a half-received one behind, with the patient's data inside.
"""

import functools
import gc
import logging
import os
import time
from pathlib import Path

from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from cloudpacs.dimse.pdu import MAX_PDU
from cloudpacs.dimse.reactors import make_event_driven

log = logging.getLogger(__name__)

PDU_READ_LIMIT = MAX_PDU + 64 * 1024
HANDSHAKE_SECONDS = 30
FULL_COLLECTION_SECONDS = 60


class _SharedUIDsContext(PresentationContext):
    """A presentation context whose deep copy shares its UIDs (immutable strings) with the
    original: every other attribute, and the transfer syntax list, are the copy's own."""

    def __deepcopy__(self, memo):
        return _sharing_uids(self)


def _sharing_uids(context: PresentationContext) -> "_SharedUIDsContext":
    twin = object.__new__(_SharedUIDsContext)
    twin.__dict__.update(context.__dict__)
    twin._transfer_syntax = list(context._transfer_syntax)
    return twin


class GatewayServer(ThreadedAssociationServer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.contexts = [_sharing_uids(context) for context in self.contexts]
        self._collected_at = time.monotonic()

    def service_actions(self) -> None:
        """pynetdicom runs a full garbage collection every 60 turns of the accept loop (a
        turn per connection, or per half second idle), to free ended associations, which
        hold reference cycles. In a Django process a full collection takes tens of
        milliseconds, with every association's thread stopped meanwhile: once a
        connection per image, it was 7% of the gateway's time. Once a minute at most here."""
        if time.monotonic() - self._collected_at >= FULL_COLLECTION_SECONDS:
            gc.collect()
            self._collected_at = time.monotonic()

    def get_request(self):
        client, address = self.socket.accept()
        if self.ssl_context:
            client = self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        return client, address


class GatewayRequestHandler(RequestHandler):
    def handle(self) -> None:
        if hasattr(self.request, "do_handshake"):
            try:
                self.request.settimeout(HANDSHAKE_SECONDS)
                self.request.do_handshake()
                self.request.settimeout(None)
            except (TimeoutError, OSError) as exc:
                log.info("TLS handshake failed from %s: %s", self.client_address[0], type(exc).__name__)
                return
        super().handle()

    def _create_association(self):
        assoc = super()._create_association()
        _bound_pdu_reads(assoc)
        make_event_driven(assoc)
        run = assoc.run

        def run_then_discard_partial() -> None:
            try:
                run()
            finally:
                partial_dataset_discard(assoc)

        assoc.run = run_then_discard_partial  # Thread.start() calls it in the new thread
        return assoc


def received_data_set_owned(handler):
    """A C-STORE handler (either gateway's) that takes over the received data set's file:
    pynetdicom's handle on it is closed before the handler runs, and the plaintext is
    removed after it, whatever it answered or raised.

    - pynetdicom closes its handle only after the handler, and a file still open outlives
      its unlink: the archive's tier-1 flush (syncfs), which comes after ingest removed the
      plaintext, wrote it out too (half of what it wrote for a CT slice).
    - pynetdicom removes the file after a C-STORE it serves, but not after one that comes
      back on a C-GET it asked for (the edge's migration), nor when the handler raises.
    A file the handler moved (ingest adopts it into the spool) is not there to remove.
    `_dataset_file` is pynetdicom's (3.0)."""

    @functools.wraps(handler)
    def handle(event):
        received = getattr(event.request, "_dataset_file", None)
        if received is not None:
            received.close()
        try:
            return handler(event)
        finally:
            Path(event.dataset_path).unlink(missing_ok=True)

    return handle


def partial_dataset_discard(assoc) -> None:
    """Remove the file of a data set the peer did not finish sending (an A-ABORT, a
    dropped connection or a timeout in the middle of a C-STORE). pynetdicom writes a
    received data set to a temporary file as it arrives and removes it after the C-STORE
    handler, but leaves a half-received one behind, with the patient's UIDs inside. Runs
    when the association's thread ends, after its DUL thread has stopped writing.
    `_data_set_file` is pynetdicom's (3.0) attribute for that file."""
    message = getattr(assoc.dimse, "message", None)
    partial = getattr(message, "_data_set_file", None)
    if partial is None:
        return
    try:
        partial.close()
        os.unlink(partial.name)
    except OSError:
        log.warning("could not remove a partly received data set", exc_info=True)
    else:
        log.info("removed a partly received data set (association ended mid C-STORE)")


def _bound_pdu_reads(assoc) -> None:
    """Refuse a PDU longer than agreed before reading it: the DUL reads 6 bytes of header,
    then the announced length in one call."""
    sock = assoc.dul.socket
    recv = sock.recv

    def bounded_recv(nr_bytes: int) -> bytearray:
        if nr_bytes > PDU_READ_LIMIT:
            log.warning("closing a connection that announced a %d-byte PDU (at most %d)", nr_bytes, MAX_PDU)
            raise OSError("PDU longer than the gateway accepts")
        return recv(nr_bytes)

    sock.recv = bounded_recv
