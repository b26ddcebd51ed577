"""The clinic's DICOM peers page and commands: senders (calling AE titles, from an address
range) and destinations, each change audited."""

import pytest
from django.urls import reverse

from archive.gateway.acceptance import association_admit
from archive.gateway.models import DicomPeer
from tenants import roles
from tenants.audit import AuditEvent


def url(tenant, name="archive:dicom_peers", **kwargs):
    return reverse(name, kwargs={"tenant_slug": tenant.slug, **kwargs})


def test_admin_adds_a_sender_that_is_then_admitted(client, tenant, owner, login):
    login(owner)
    response = client.post(url(tenant), {"ae_title": "ct_scanner1", "may_send": "on", "host": "", "port": "",
                                         "description": "CT room 1"})
    assert response.status_code == 302
    peer = DicomPeer.objects.for_tenant(tenant).get()
    assert peer.ae_title == "CT_SCANNER1"
    assert association_admit(called_ae=tenant.ae_title, calling_ae="CT_SCANNER1", address="10.1.1.1").reject is None
    assert AuditEvent.objects.for_tenant(tenant).filter(action="dicom_peer.added").exists()
    assert "CT_SCANNER1" in client.get(url(tenant)).content.decode()


def test_a_sender_from_a_range_is_refused_elsewhere(client, tenant, owner, login):
    login(owner)
    client.post(url(tenant), {"ae_title": "MR1", "may_send": "on", "network": "10.0.0.0/29", "host": "10.0.0.5",
                              "port": "104", "description": ""})
    peer = DicomPeer.objects.for_tenant(tenant).get()
    assert (peer.network, peer.host, peer.port, peer.is_destination) == ("10.0.0.0/29", "10.0.0.5", 104, True)
    assert association_admit(called_ae=tenant.ae_title, calling_ae="MR1", address="10.0.0.5").reject is None
    assert association_admit(called_ae=tenant.ae_title, calling_ae="MR1", address="10.0.0.9").reject is not None
    assert association_admit(called_ae=tenant.ae_title, calling_ae="MR1", address=None).reject is not None


def test_a_destination_only_peer_is_not_let_in(client, tenant, owner, login):
    login(owner)
    assert client.post(url(tenant), {"ae_title": "WS1", "host": "ws1.clinic.lan", "port": "11112"}).status_code == 302
    assert association_admit(called_ae=tenant.ae_title, calling_ae="WS1", address="10.0.0.5").reject is not None
    # Half a destination, or a peer that neither sends nor receives, is refused.
    assert client.post(url(tenant), {"ae_title": "WS2", "host": "ws2"}).status_code == 400
    assert client.post(url(tenant), {"ae_title": "WS3"}).status_code == 400
    assert client.post(url(tenant), {"ae_title": "WS4", "may_send": "on", "network": "10.0.0.300/8"}).status_code == 400


def test_bad_and_duplicate_titles_are_refused(client, tenant, owner, login):
    login(owner)
    assert client.post(url(tenant), {"ae_title": "BAD\\TITLE", "may_send": "on"}).status_code == 400
    client.post(url(tenant), {"ae_title": "US1", "may_send": "on"})
    response = client.post(url(tenant), {"ae_title": "us1", "may_send": "on"})
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


def test_allow_calling_ae_command(tenant, capsys):
    from django.core.management import CommandError, call_command

    call_command("allow_calling_ae", tenant.slug, "ct_room1", "--ip", "192.168.10.7")
    peer = DicomPeer.objects.for_tenant(tenant).get(ae_title="CT_ROOM1")
    assert (peer.may_send, peer.network) == (True, "192.168.10.7/32")
    assert association_admit(called_ae=tenant.ae_title, calling_ae="CT_ROOM1", address="192.168.10.7").reject is None
    assert association_admit(called_ae=tenant.ae_title, calling_ae="CT_ROOM1", address="192.168.10.8").reject
    call_command("allow_calling_ae", tenant.slug, "CT_ROOM1")  # again, from anywhere now
    assert DicomPeer.objects.for_tenant(tenant).get(ae_title="CT_ROOM1").network == ""
    assert AuditEvent.objects.for_tenant(tenant).filter(action="dicom_peer.sender_allowed").count() == 2
    for bad in (["nosuchclinic", "X"], [tenant.slug, "BAD\\AE"], [tenant.slug, "X", "--ip", "300.1.1.1"]):
        with pytest.raises(CommandError):
            call_command("allow_calling_ae", *bad)


def test_add_dicom_destination_command(tenant):
    from django.core.management import CommandError, call_command

    call_command("add_dicom_destination", tenant.slug, "WS_READING1", "reading1.clinic.lan", "11112")
    peer = DicomPeer.objects.for_tenant(tenant).get(ae_title="WS_READING1")
    assert (peer.host, peer.port, peer.may_send) == ("reading1.clinic.lan", 11112, False)
    assert association_admit(called_ae=tenant.ae_title, calling_ae="WS_READING1", address="10.0.0.1").reject
    call_command("allow_calling_ae", tenant.slug, "WS_READING1")  # the workstation also sends
    peer.refresh_from_db()
    assert peer.may_send and peer.is_destination
    assert AuditEvent.objects.for_tenant(tenant).filter(action="dicom_peer.destination_set").exists()
    for bad in (["WS2", "host", "0"], ["WS2", "host", "70000"], ["WS2", "two words", "104"]):
        with pytest.raises(CommandError):
            call_command("add_dicom_destination", tenant.slug, *bad)
