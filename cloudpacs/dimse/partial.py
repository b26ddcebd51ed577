"""Removing what a peer did not finish sending: pynetdicom writes a received data set to a
temporary file as it arrives and removes it after the C-STORE handler, but leaves a
half-received one behind (an A-ABORT, a dropped connection or a timeout mid C-STORE), with
the patient's data inside. Both gateways serve associations with this handler."""

import logging
import os

from pynetdicom.transport import RequestHandler

log = logging.getLogger(__name__)


class DiscardingRequestHandler(RequestHandler):
    def _create_association(self):
        assoc = super()._create_association()
        run = assoc.run

        def run_then_discard_partial() -> None:
            try:
                run()
            finally:
                partial_dataset_discard(assoc)

        assoc.run = run_then_discard_partial  # Thread.start() calls it in the new thread
        return assoc


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
