"""Writes to a clinic's list of DICOM senders. Each change is audited."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from archive.gateway.models import DicomPeer
from tenants.audit import Actor, audit_record
from tenants.models import validate_ae_title


@transaction.atomic
def dicom_peer_add(*, tenant, ae_title: str, host: str | None, port: int | None, description: str,
                   actor: Actor) -> DicomPeer:
    ae_title = ae_title.strip().upper()
    validate_ae_title(ae_title)
    try:
        with transaction.atomic():
            peer = DicomPeer.objects.for_tenant(tenant).create(
                ae_title=ae_title, host=host or None, port=port, description=description)
    except IntegrityError:
        raise ValidationError(f"{ae_title} is on the list already") from None
    audit_record(tenant=tenant, actor=actor, action="dicom_peer.added", obj_type="dicom_peer", obj_id=peer.pk,
                 detail={"ae_title": ae_title, "host": host or "", "port": port})
    return peer


@transaction.atomic
def dicom_peer_remove(*, peer: DicomPeer, actor: Actor) -> None:
    audit_record(tenant=peer.tenant, actor=actor, action="dicom_peer.removed", obj_type="dicom_peer",
                 obj_id=peer.pk, detail={"ae_title": peer.ae_title})
    peer.delete()
