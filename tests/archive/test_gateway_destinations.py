"""The gateway never calls the cloud's own addresses, whatever a clinic typed as a C-MOVE
destination or a modality's address: loopback and link-local (cloud metadata) by default."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

from archive.gateway.destinations import DestinationRefused, destination_check
from archive.gateway.models import DicomPeer
from tests.archive.test_gateway import running_gateway
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes

pytestmark = pytest.mark.django_db(transaction=True)
DEFAULT = "127.0.0.0/8,::1/128,169.254.0.0/16,fe80::/10,0.0.0.0/8"


def test_the_default_list_is_the_documented_one():
    """Without the variable (the tests set it for their loopback peers), the default."""
    env = {k: v for k, v in os.environ.items() if k != "DICOM_DESTINATIONS_DENY"}
    out = subprocess.run([sys.executable, "-c", "import cloudpacs.settings as s; print(s.DICOM_DESTINATIONS_DENY)"],
                         env=env, capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == DEFAULT, out.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "169.254.169.254", "0.0.0.0", "::1", "224.0.0.1"])
def test_the_clouds_own_addresses_are_refused(settings, host):
    settings.DICOM_DESTINATIONS_DENY = DEFAULT
    with pytest.raises(DestinationRefused):
        destination_check(host, 104)


@pytest.mark.parametrize("host", ["10.1.2.3", "192.168.1.20", "203.0.113.7"])
def test_clinic_networks_are_allowed(settings, host):
    settings.DICOM_DESTINATIONS_DENY = DEFAULT
    destination_check(host, 104)


def test_a_move_to_a_loopback_destination_is_a801(settings, tenant):
    settings.DICOM_DESTINATIONS_DENY = DEFAULT
    DicomPeer.objects.for_tenant(tenant).create(ae_title="WORKSTATION")
    DicomPeer.objects.for_tenant(tenant).create(ae_title="METADATA", may_send=False, host="127.0.0.1", port=80)
    [ds] = make_ct_series(1, 16, 16)
    assert ingest_bytes(tenant, to_bytes(ds)).ok
    query = Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID = "STUDY", ds.StudyInstanceUID
    with running_gateway() as port:
        ae = AE(ae_title="WORKSTATION")
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = ae.associate("127.0.0.1", port, ae_title=tenant.ae_title)
        statuses = [s.Status for s, _ in assoc.send_c_move(query, "METADATA", StudyRootQueryRetrieveInformationModelMove)]
        assoc.release()
    assert statuses == [0xA801]
