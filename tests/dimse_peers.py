"""What a misbehaving DICOM peer does, for the gateways' tests."""

import io

from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode


def send_half_a_data_set(assoc, ds) -> None:
    """Start a C-STORE (implicit VR little endian, on the first accepted context) and send
    the command and half of the data set's PDUs, then nothing: the caller aborts."""
    request = C_STORE()
    request.MessageID, request.Priority = 1, 2
    request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    request.DataSet = io.BytesIO(encode(ds, True, True))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    fragments = list(message.encode_msg(assoc.accepted_contexts[0].context_id, 16384))
    for pdata in fragments[:len(fragments) // 2]:
        assoc.dul.send_pdu(pdata)
