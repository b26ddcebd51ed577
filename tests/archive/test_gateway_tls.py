"""DICOM over TLS: the gateway's second port, with dcmtk's `+tls`/`+tla` options and a
pynetdicom client; a plain connection to it, an untrusted certificate, and (mutual TLS) a
peer without a certificate are refused; a half-configured TLS stops the command."""

import datetime
import ipaddress
import shutil
import ssl
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.management import CommandError, call_command
from pydicom.data import get_testdata_file
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from archive.gateway.models import DicomPeer
from archive.gateway.server import start_gateway
from archive.gateway.tls import tls_context
from archive.models import Instance
from tests.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)
DCMTK = pytest.mark.skipif(shutil.which("echoscu") is None, reason="dcmtk not installed (make test installs it)")
ENV = {"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"}


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject: str, key, issuer_name, issuer_key, *, ca: bool, server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A test CA, the gateway's certificate and a modality's, as PEM files; and a stranger CA."""
    folder = tmp_path_factory.mktemp("pki")
    for ca_name in ("ca", "stranger-ca"):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _issue(ca_name, ca_key, _name(ca_name), ca_key, ca=True)
        _write(folder / ca_name, ca_cert, ca_key)
        if ca_name == "ca":
            for leaf, server in (("gateway", True), ("modality", False)):
                key = ec.generate_private_key(ec.SECP256R1())
                _write(folder / leaf, _issue(leaf, key, ca_cert.subject, ca_key, ca=False, server=server), key)
    return folder


@contextmanager
def tls_gateway(pki: Path, *, mutual: bool = False):
    port, tls_port = free_port(), free_port()
    context = tls_context(str(pki / "gateway.pem"), str(pki / "gateway.key"), str(pki / "ca.pem") if mutual else "")
    gateway = start_gateway("127.0.0.1", port, block=False, tls_port=tls_port, ssl_context=context)
    try:
        yield port, tls_port
    finally:
        gateway.shutdown()
        gateway.server_close()


@pytest.fixture
def sender(tenant):
    DicomPeer.objects.for_tenant(tenant).create(ae_title="MODALITY1")


def run(*args):
    return subprocess.run([*args], capture_output=True, text=True, timeout=60, env=ENV)


@DCMTK
def test_dcmtk_echo_and_store_over_tls(pki, tenant, sender):
    with tls_gateway(pki) as (port, tls_port):
        trust = ["+tla", "+cf", str(pki / "ca.pem")]
        echo = run("echoscu", *trust, "-aet", "MODALITY1", "-aec", tenant.ae_title, "127.0.0.1", str(tls_port))
        assert echo.returncode == 0, echo.stderr
        store = run("storescu", *trust, "-aet", "MODALITY1", "-aec", tenant.ae_title, "127.0.0.1", str(tls_port),
                    get_testdata_file("CT_small.dcm"))
        assert store.returncode == 0, store.stderr
        assert Instance.objects.for_tenant(tenant).count() == 1
        # The plain port still answers; plain DICOM to the TLS port does not get through.
        assert run("echoscu", "-aet", "MODALITY1", "-aec", tenant.ae_title, "127.0.0.1", str(port)).returncode == 0
        assert run("echoscu", "-to", "5", "-ta", "5", "-aet", "MODALITY1", "-aec", tenant.ae_title,
                   "127.0.0.1", str(tls_port)).returncode != 0
        # A client that trusts another CA refuses the gateway's certificate.
        untrusted = run("echoscu", "+tla", "+cf", str(pki / "stranger-ca.pem"), "-aet", "MODALITY1",
                        "-aec", tenant.ae_title, "127.0.0.1", str(tls_port))
        assert untrusted.returncode != 0


@DCMTK
def test_mutual_tls_wants_a_certificate_of_the_clinic_ca(pki, tenant, sender):
    with tls_gateway(pki, mutual=True) as (_, tls_port):
        anonymous = run("echoscu", "+tla", "+cf", str(pki / "ca.pem"), "-aet", "MODALITY1", "-aec", tenant.ae_title,
                        "127.0.0.1", str(tls_port))
        assert anonymous.returncode != 0
        with_cert = run("echoscu", "+tls", str(pki / "modality.key"), str(pki / "modality.pem"),
                        "+cf", str(pki / "ca.pem"), "-aet", "MODALITY1", "-aec", tenant.ae_title,
                        "127.0.0.1", str(tls_port))
        assert with_cert.returncode == 0, with_cert.stderr


def test_pynetdicom_over_tls(pki, tenant, sender):
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.pem"))
    with tls_gateway(pki) as (_, tls_port):
        ae = AE(ae_title="MODALITY1")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", tls_port, ae_title=tenant.ae_title, tls_args=(client, "localhost"))
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()


def test_half_configured_tls_stops_the_command(settings, pki):
    settings.DICOM_TLS_CERT = str(pki / "gateway.pem")
    settings.DICOM_TLS_KEY = ""
    with pytest.raises(CommandError, match="DICOM_TLS_CERT and DICOM_TLS_KEY"):
        call_command("dicom_gateway", "--port", "0")
    settings.DICOM_TLS_KEY = str(pki / "missing.key")
    with pytest.raises(CommandError, match="DICOM_TLS_KEY: no file"):
        call_command("dicom_gateway", "--port", "0")
    settings.DICOM_TLS_KEY = str(pki / "modality.key")  # not the certificate's key
    with pytest.raises(CommandError, match="DICOM_TLS_CERT / DICOM_TLS_KEY"):
        call_command("dicom_gateway", "--port", "0")


def test_a_silent_connection_does_not_block_other_tls_peers(pki, tenant, sender):
    """A peer that opens the TLS port and sends nothing: the handshake waits in that
    connection's own thread, and other peers are served meanwhile."""
    import socket

    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.pem"))
    with tls_gateway(pki) as (_, tls_port):
        silent = socket.create_connection(("127.0.0.1", tls_port))
        try:
            ae = AE(ae_title="MODALITY1")
            ae.add_requested_context(Verification)
            ae.acse_timeout = ae.network_timeout = 10
            assoc = ae.associate("127.0.0.1", tls_port, ae_title=tenant.ae_title, tls_args=(client, "localhost"))
            assert assoc.is_established
            assert assoc.send_c_echo().Status == 0x0000
            assoc.release()
        finally:
            silent.close()
