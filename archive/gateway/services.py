"""Writes to a clinic's DICOM peers: senders it lets in, destinations it sends to. Each
change is audited."""

from django.core.exceptions import ValidationError
from django.db import transaction

from archive.gateway.models import DicomPeer, normalize_network, validate_network
from tenants.audit import Actor, audit_record
from tenants.models import validate_ae_title


def _title(ae_title: str) -> str:
    ae_title = (ae_title or "").strip().upper()
    validate_ae_title(ae_title)
    return ae_title


def _network(network: str | None) -> str:
    network = (network or "").strip()
    if network:
        validate_network(network)
    return normalize_network(network)


def _port(port) -> int | None:
    if port in (None, ""):
        return None
    port = int(port)
    if not 1 <= port <= 65535:
        raise ValidationError("A port is 1 to 65535.")
    return port


def _audit(peer: DicomPeer, action: str, actor: Actor) -> None:
    audit_record(tenant=peer.tenant, actor=actor, action=action, obj_type="dicom_peer", obj_id=peer.pk,
                 detail={"ae_title": peer.ae_title, "may_send": peer.may_send, "network": peer.network,
                         "host": peer.host, "port": peer.port})


@transaction.atomic
def dicom_peer_add(*, tenant, ae_title: str, actor: Actor, may_send: bool = True, network: str = "",
                   host: str = "", port: int | None = None, description: str = "") -> DicomPeer:
    """A new peer (the page's form); an AE title on the list already is refused."""
    ae_title = _title(ae_title)
    if DicomPeer.objects.for_tenant(tenant).filter(ae_title=ae_title).exists():
        raise ValidationError(f"{ae_title} is on the list already")
    peer = DicomPeer.objects.for_tenant(tenant).create(
        ae_title=ae_title, may_send=may_send, network=_network(network), host=(host or "").strip(),
        port=_port(port), description=description)
    _audit(peer, "dicom_peer.added", actor)
    return peer


@transaction.atomic
def dicom_sender_allow(*, tenant, ae_title: str, network: str | None, actor: Actor) -> DicomPeer:
    """Let a calling AE title in (from `network` only, when given): a known peer (a
    destination, say) becomes a sender too, with this range."""
    ae_title, network = _title(ae_title), _network(network)
    peer = DicomPeer.objects.for_tenant(tenant).select_for_update().filter(ae_title=ae_title).first()
    if peer is None:
        peer = DicomPeer.objects.for_tenant(tenant).create(ae_title=ae_title, may_send=True, network=network)
    else:
        peer.may_send, peer.network = True, network
        peer.save(update_fields=["may_send", "network"])
    _audit(peer, "dicom_peer.sender_allowed", actor)
    return peer


@transaction.atomic
def dicom_destination_set(*, tenant, ae_title: str, host: str, port, actor: Actor) -> DicomPeer:
    """Where C-MOVE may send for this AE title; a new peer is a destination only (it is not
    let in as a sender by this)."""
    ae_title, port, host = _title(ae_title), _port(port), (host or "").strip()
    if not host or len(host) > 255 or any(c.isspace() for c in host):
        raise ValidationError("Give the destination's host name or address.")
    if port is None:
        raise ValidationError("Give the destination's port.")
    peer = DicomPeer.objects.for_tenant(tenant).select_for_update().filter(ae_title=ae_title).first()
    if peer is None:
        peer = DicomPeer.objects.for_tenant(tenant).create(ae_title=ae_title, may_send=False, host=host, port=port)
    else:
        peer.host, peer.port = host, port
        peer.save(update_fields=["host", "port"])
    _audit(peer, "dicom_peer.destination_set", actor)
    return peer


@transaction.atomic
def dicom_peer_remove(*, peer: DicomPeer, actor: Actor) -> None:
    audit_record(tenant=peer.tenant, actor=actor, action="dicom_peer.removed", obj_type="dicom_peer",
                 obj_id=peer.pk, detail={"ae_title": peer.ae_title})
    peer.delete()
