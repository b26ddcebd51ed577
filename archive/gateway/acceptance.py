"""Who may open an association: the called AE title picks the clinic, and the calling AE
title must be one of that clinic's senders (from its address range, when it has one)."""

from dataclasses import dataclass

from archive.gateway.models import DicomPeer
from tenants.models import Tenant

# A-ASSOCIATE-RJ (result, source, diagnostic): rejected-permanent, service-user, ...
REJECT_CALLING_AE = (0x01, 0x01, 0x03)
REJECT_CALLED_AE = (0x01, 0x01, 0x07)


@dataclass
class Admission:
    tenant: Tenant | None
    peer: DicomPeer | None
    reject: tuple[int, int, int] | None


def association_admit(*, called_ae: str, calling_ae: str, address: str | None) -> Admission:
    tenant = Tenant.objects.filter(ae_title=called_ae.strip(), status=Tenant.ACTIVE).first()
    if tenant is None:
        return Admission(None, None, REJECT_CALLED_AE)
    peer = DicomPeer.objects.for_tenant(tenant).filter(ae_title=calling_ae.strip()).first()
    if peer is None or not peer.admits(address):
        return Admission(tenant, None, REJECT_CALLING_AE)
    return Admission(tenant, peer, None)
