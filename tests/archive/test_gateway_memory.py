"""The DICOM gateway's memory while a large instance arrives: `manage.py dicom_gateway` in
its own process, a 192 MB multiframe from pynetdicom (which sends PDUs as large as the
gateway allows). A PDU is read whole, so the gateway must not allow unlimited ones."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.db import connection
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from archive.gateway.models import DicomPeer
from archive.models import Instance
from tests.dicom_factory import make_ct_series
from tests.servers import database_url, free_port, port_open, stop_group, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parents[2]


def test_a_large_instance_does_not_take_its_size_in_memory(tenant, settings, tmp_path):
    DicomPeer.objects.for_tenant(tenant).create(ae_title="MODALITY1")
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "cloudpacs.settings",
           "DATABASE_URL": database_url(connection.settings_dict), "CLOUDPACS_VAR_DIR": str(tmp_path / "var"),
           # The same master key as this process (its own folder would make another one): the
           # clinic's audit chain refuses events under another key.
           "MASTER_KEY_FILE": settings.MASTER_KEY_FILE,
           "TIER1_PATH": str(tmp_path / "tier1"), "INGEST_TMP_DIR": str(tmp_path / "tmp")}
    with open(tmp_path / "gateway.log", "wb") as log:
        gateway = subprocess.Popen([sys.executable, "manage.py", "dicom_gateway", "--port", str(port)], cwd=REPO,
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: port_open(port), timeout=30, what="the gateway")
        [ds] = make_ct_series(1, 512, 512)
        ds.NumberOfFrames = 384
        ds.PixelData = np.zeros((384, 512, 512), dtype=np.uint16).tobytes()
        ae = AE(ae_title="MODALITY1")
        ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
        assoc = ae.associate("127.0.0.1", port, ae_title=tenant.ae_title)
        assert assoc.is_established
        assert assoc.send_c_store(ds).Status == 0x0000
        assoc.release()
        status = Path(f"/proc/{gateway.pid}/status").read_text()
        peak_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
    finally:
        stop_group(gateway, grace=10)
    assert Instance.objects.for_tenant(tenant).count() == 1
    assert peak_kb < 200 * 1024, f"peak RSS {peak_kb >> 10} MB for a {len(ds.PixelData) >> 20} MB instance"
