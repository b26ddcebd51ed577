"""Every main page of a clinic, as its owner sees it with realistic data (long names and
UIDs, a study past retention, a pending deletion, tokens, invitations, audit events):
each answers, is reachable by a link from the menu, the dashboard or the settings page,
and fits a phone's width without sideways scrolling (and a desktop's)."""

from urllib.parse import urlparse

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from archive.gateway.models import DicomPeer
from archive.retention.deletion import deletion_request_create
from archive.sharing.services import share_create
from tenants import roles
from tenants.audit import Actor
from tenants.services import invitation_create
from tests.archive.retention_helpers import ingest_series, past
from tests.e2e.conftest import fits_screen, log_in, snap

pytestmark = pytest.mark.browser

LONG_NAME = "Featherstonehaugh-Montgomery^Maximiliana Josephine Alexandra"


def _clinic_with_data(tenant, owner, make_member, make_token):
    admin = make_member(tenant, roles.ADMIN)
    old = ingest_series(tenant, 2, study_date=past(12), patient_name=LONG_NAME,
                        patient_id="MRN-0000000000000000000042", referring="Housekeeping^Gregory^Maximilian",
                        accession="ACC-2014-0001")
    recent = ingest_series(tenant, 1, study_date=past(0), seed=3)
    deletion_request_create(tenant=tenant, study=old, user=admin, override_retention=False,
                            reason="Duplicate of a study sent twice by the CT scanner in room 2",
                            actor=Actor.system("test"))
    make_token(tenant, ["upload"], name="CT scanner room 2 (Siemens SOMATOM go.Up) nightly sender")
    DicomPeer.objects.for_tenant(tenant).create(
        ae_title="CT_ROOM2_SOMATOM", host="192.168.100.200", port=104,
        description="Siemens SOMATOM go.Up in room 2, second floor, radiology wing")
    invitation_create(tenant=tenant, email="a.very.long.address.for.a.radiologist@example-hospital.test",
                      role=roles.RADIOLOGIST, by_role=roles.OWNER, invited_by=owner, actor=Actor.system("test"))
    share_create(tenant=tenant, study=old, actor=Actor.system("test"), access_code="12345678",
                 recipient_name="Dr Bartholomew Featherstonehaugh-Montgomery",
                 recipient_email="bartholomew.featherstonehaugh@referring-hospital.example")
    return old, recent


@pytest.mark.parametrize("screen", ["phone", "desktop"])
def test_every_main_page_is_linked_and_fits(request, screen, live_server, tenant, owner, make_member,
                                            make_token, e2e_dirs):
    page = request.getfixturevalue(screen)
    old, recent = _clinic_with_data(tenant, owner, make_member, make_token)
    base = f"/t/{tenant.slug}"
    pages = {
        "dashboard": f"{base}/",
        "worklist": f"{base}/studies/",
        "study": f"{base}/studies/{old.pk}/",
        "study-recent": f"{base}/studies/{recent.pk}/",
        "upload": f"{base}/upload/",
        "members": f"{base}/members/",
        "tokens": f"{base}/settings/tokens/",
        "dicom-senders": f"{base}/settings/dicom/",
        "settings": f"{base}/settings/",
        "audit": f"{base}/audit/",
        "retention": f"{base}/settings/retention/",
        "retention-report": f"{base}/retention/",
        "deletions": f"{base}/deletions/",
        "deletion-request": f"{base}/studies/{recent.pk}/delete/",
        "shares": f"{base}/shares/",
        "share-new": f"{base}/studies/{old.pk}/share/",
        "thumbnails": f"{base}/studies/{old.pk}/thumbnails/",
    }
    device = TOTPDevice.objects.create(user=owner, name="owner's phone", confirmed=True)
    log_in(page, live_server.url + pages["dashboard"], owner.email, totp_device=device)

    linked: set[str] = set()
    for name, path in pages.items():
        response = page.goto(live_server.url + path)
        assert response.status == 200, (name, response.status)
        assert page.locator("h1").count() == 1, name
        snap(page, f"{name}-{screen}")
        assert fits_screen(page), f"{name} scrolls sideways at {page.viewport_size}"
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
        linked.update(urlparse(h).path for h in hrefs)

    # Each page can be reached by following links (none is a URL to be typed in).
    assert set(pages.values()) - linked == set()
    # The study past retention shows in the report, and its pending deletion in the list.
    page.goto(live_server.url + pages["retention-report"])
    assert "Featherstonehaugh-Montgomery" in page.inner_text("main")
    page.goto(live_server.url + pages["deletions"])
    assert page.get_by_role("button", name="Approve and delete").count() == 1
