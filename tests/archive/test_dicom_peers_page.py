"""The clinic's DICOM senders page: add and remove allowed calling AE titles, audited."""

from django.urls import reverse

from archive.gateway.acceptance import association_admit
from archive.gateway.models import DicomPeer
from tenants import roles
from tenants.audit import AuditEvent


def url(tenant, name="archive:dicom_peers", **kwargs):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


def test_admin_adds_a_sender_that_is_then_admitted(client, tenant, owner, login):
    login(owner)
    response = client.post(url(tenant), {"ae_title": "ct_scanner1", "host": "", "port": "",
                                         "description": "CT room 1"})
    assert response.status_code == 302
    peer = DicomPeer.objects.for_tenant(tenant).get()
    assert peer.ae_title == "CT_SCANNER1"
    assert association_admit(called_ae=tenant.ae_title, calling_ae="CT_SCANNER1", address="10.1.1.1").reject is None
    assert AuditEvent.objects.for_tenant(tenant).filter(action="dicom_peer.added").exists()
    assert "CT_SCANNER1" in client.get(url(tenant)).content.decode()


def test_pinned_host_refuses_other_addresses(client, tenant, owner, login):
    login(owner)
    client.post(url(tenant), {"ae_title": "MR1", "host": "10.0.0.5", "port": "104", "description": ""})
    assert association_admit(called_ae=tenant.ae_title, calling_ae="MR1", address="10.0.0.5").reject is None
    assert association_admit(called_ae=tenant.ae_title, calling_ae="MR1", address="10.0.0.6").reject is not None


def test_bad_and_duplicate_titles_are_refused(client, tenant, owner, login):
    login(owner)
    assert client.post(url(tenant), {"ae_title": "BAD\\TITLE"}).status_code == 400
    client.post(url(tenant), {"ae_title": "US1"})
    response = client.post(url(tenant), {"ae_title": "us1"})
    assert response.status_code == 400 and "already" in response.content.decode()
    assert DicomPeer.objects.for_tenant(tenant).count() == 1


def test_remove(client, tenant, owner, login):
    login(owner)
    peer = DicomPeer.objects.for_tenant(tenant).create(ae_title="OLDCR")
    response = client.post(url(tenant, "archive:dicom_peer_remove", peer_id=peer.pk))
    assert response.status_code == 302 and not DicomPeer.objects.for_tenant(tenant).exists()
    assert AuditEvent.objects.for_tenant(tenant).filter(action="dicom_peer.removed").exists()


def test_radiologist_may_not_manage_senders(client, tenant, make_member, login):
    login(make_member(tenant, roles.RADIOLOGIST))
    assert client.get(url(tenant)).status_code == 403
    assert client.post(url(tenant), {"ae_title": "SNEAKY"}).status_code == 403
    assert not DicomPeer.objects.for_tenant(tenant).exists()


def test_other_clinics_sender_is_404(client, tenant, other_tenant, owner, login):
    peer = DicomPeer.objects.for_tenant(other_tenant).create(ae_title="THEIRS")
    login(owner)
    assert client.post(url(tenant, "archive:dicom_peer_remove", peer_id=peer.pk)).status_code == 404
    assert DicomPeer.objects.for_tenant(other_tenant).exists()
