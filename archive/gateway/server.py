"""The DICOM gateway: one listening port for all clinics. The called AE title selects the
clinic; the association is refused unless the calling AE is one of that clinic's senders.
It answers C-ECHO, C-STORE, C-FIND, C-GET and C-MOVE (Patient Root and Study Root), and
storage commitment."""

import logging
import tempfile
import threading

from django.conf import settings
from pynetdicom import AE, _config, evt
from pynetdicom.acse import ACSE
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import StorageCommitmentPushModel, Verification
from pynetdicom.transport import ThreadedAssociationServer

from archive.gateway import find, handlers, retrieve
from archive.gateway.acceptance import association_admit
from cloudpacs.dimse import contexts, uids
from cloudpacs.dimse.pdu import MAX_PDU
from cloudpacs.dimse.serving import GatewayRequestHandler, GatewayServer

log = logging.getLogger(__name__)


class TenantACSE(ACSE):
    def _negotiate_as_acceptor(self) -> None:
        from django.db import close_old_connections, connection

        rq = self.requestor.primitive
        close_old_connections()
        try:
            admission = association_admit(called_ae=rq.called_ae_title, calling_ae=rq.calling_ae_title,
                                          address=self.assoc.requestor.address)
        except BaseException:
            connection.close()
            raise
        if admission.reject is not None:
            log.info("rejecting association %s -> %s from %s", rq.calling_ae_title, rq.called_ae_title,
                     self.assoc.requestor.address)
            # The look-up took a (pooled) connection in this association's thread; a refused
            # association ends without the released/aborted events that give it back.
            connection.close()
            self.send_reject(*admission.reject)
            evt.trigger(self.assoc, evt.EVT_REJECTED, {})
            self.assoc.kill()
            return
        self.assoc.cloudpacs_tenant = admission.tenant
        # Answer with the AE title the peer called (the clinic's), as peers expect.
        self.assoc.acceptor.ae_title = rq.called_ae_title
        super()._negotiate_as_acceptor()


class TenantRequestHandler(GatewayRequestHandler):
    def _create_association(self):
        assoc = super()._create_association()
        assoc.acse = TenantACSE(assoc)
        return assoc


EVENT_HANDLERS = [
    (evt.EVT_C_ECHO, handlers.handle_echo),
    (evt.EVT_C_STORE, handlers.handle_store),
    (evt.EVT_C_FIND, handlers.handle_find),
    (evt.EVT_C_GET, handlers.handle_get),
    (evt.EVT_C_MOVE, handlers.handle_move),
    (evt.EVT_N_ACTION, handlers.handle_n_action),
    (evt.EVT_RELEASED, handlers.handle_association_end),
    (evt.EVT_ABORTED, handlers.handle_association_end),
]


def build_ae() -> AE:
    # Received datasets are written straight to disk (never held in memory) in the spool
    # folder, so the ingest service can take them over with a rename.
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.UNRESTRICTED_STORAGE_SERVICE = True  # accept any storage SOP class, incl. private ones
    contexts.install()  # ... and no other class it does not serve
    uids.install()  # each negotiation UID checked once, not once per association
    from archive.ingest.spool import spool_dir

    tempfile.tempdir = str(spool_dir())
    ae = AE(ae_title="CLOUDPACS")
    ae.require_called_aet = False  # TenantACSE checks called/calling pairs itself
    ae.maximum_associations = settings.DICOM_MAX_ASSOCIATIONS
    ae.network_timeout = 60
    ae.dimse_timeout = 120
    ae.acse_timeout = 30
    ae.maximum_pdu_size = MAX_PDU  # bounded: a PDU is read whole into memory
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    ae.add_supported_context(StorageCommitmentPushModel)
    for model in (*find.MODELS, *retrieve.GET_MODELS, *retrieve.MOVE_MODELS):
        ae.add_supported_context(model)
    return ae


class Gateway:
    """The gateway's listening servers (plain, and TLS when configured), stopped together."""

    def __init__(self, servers: list[ThreadedAssociationServer]):
        self.servers = servers

    @property
    def server_address(self) -> tuple:
        """The plain port's (host, port): the port chosen when 0 was asked."""
        return self.servers[0].server_address

    def shutdown(self) -> None:
        for server in self.servers:
            server.shutdown()

    def server_close(self) -> None:
        for server in self.servers:
            server.server_close()


def start_gateway(host: str, port: int, block: bool = True, *, tls_port: int | None = None,
                  ssl_context=None) -> Gateway | None:
    """Serve on `port`, and on `tls_port` with `ssl_context` when both are given; blocks
    until interrupted unless `block` is false."""
    ae = build_ae()
    addresses = [((host, port), None)]
    if ssl_context is not None and tls_port:
        addresses.append(((host, tls_port), ssl_context))
    servers = []
    for address, context in addresses:
        server = ae.make_server(address, evt_handlers=EVENT_HANDLERS, ssl_context=context,
                                server_class=GatewayServer, request_handler=TenantRequestHandler)
        ae._servers.append(server)  # as AE.start_server does, so server.shutdown() can detach it
        servers.append(server)
        log.info("DICOM gateway listening on %s:%s%s", *address, " (TLS)" if context else "")
    gateway = Gateway(servers)
    for server in servers[0 if not block else 1:]:
        threading.Thread(target=server.serve_forever, name="dicom-gateway", daemon=True).start()
    if not block:
        return gateway
    try:
        servers[0].serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        gateway.shutdown()
    return None


def _all_transfer_syntaxes() -> list[str]:
    from pydicom.uid import AllTransferSyntaxes

    return list(AllTransferSyntaxes)


ALL_TRANSFER_SYNTAXES = _all_transfer_syntaxes()
