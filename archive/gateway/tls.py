"""DICOM over TLS (PS3.15 B.1, the BCP 195 profile's floor): the gateway's second port,
when DICOM_TLS_CERT and DICOM_TLS_KEY name a PEM certificate (chain) and its key. With
DICOM_TLS_CA too, a peer must present a certificate that CA signed (mutual TLS)."""

import ssl
from pathlib import Path


class TLSConfigError(ValueError):
    pass


def tls_context(cert: str, key: str, ca: str = "") -> ssl.SSLContext:
    for name, path in (("DICOM_TLS_CERT", cert), ("DICOM_TLS_KEY", key), ("DICOM_TLS_CA", ca)):
        if path and not Path(path).is_file():
            raise TLSConfigError(f"{name}: no file at {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
        if ca:
            context.load_verify_locations(cafile=ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (ssl.SSLError, ValueError) as exc:
        raise TLSConfigError(f"DICOM_TLS_CERT / DICOM_TLS_KEY / DICOM_TLS_CA: {exc}") from exc
    return context


def configured_tls_context(settings) -> ssl.SSLContext | None:
    """The context for DICOM_TLS_* settings; None when TLS is not configured."""
    cert, key, ca = settings.DICOM_TLS_CERT, settings.DICOM_TLS_KEY, settings.DICOM_TLS_CA
    if not cert and not key:
        if ca:
            raise TLSConfigError("DICOM_TLS_CA is set without DICOM_TLS_CERT and DICOM_TLS_KEY")
        return None
    if not (cert and key):
        raise TLSConfigError("set both DICOM_TLS_CERT and DICOM_TLS_KEY, or neither")
    return tls_context(cert, key, ca)
