"""Each role's landing page on a phone, in Chromium: the front desk sees the newest studies
and shares and no DICOM settings; a radiologist sees what waits for reading and opens it."""

import pytest

from archive.sharing.services import share_create
from tenants import roles
from tenants.audit import Actor
from tests.archive.retention_helpers import ingest_series, past, tier1  # noqa: F401
from tests.e2e.conftest import fits_screen, log_in, snap

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("tier1")]


def test_front_desk_and_radiologist_dashboards_on_a_phone(live_server, tenant, make_member, phone, browser):
    study = ingest_series(tenant, study_date=past(0), n=1, patient_name="Front^Fiona")
    share_create(tenant=tenant, study=study, actor=Actor.system("t"), access_code="12345678",
                 recipient_name="Dr Long-Referrer-Name Featherstonehaugh")
    desk = make_member(tenant, roles.FRONT_DESK)
    home = f"{live_server.url}/t/{tenant.slug}/"
    log_in(phone, home, desk.email)
    assert "Front, Fiona" in phone.inner_text("#recent")
    assert "Featherstonehaugh" in phone.inner_text("#recent-shares")
    assert phone.locator("#dicom-ae").count() == 0 and phone.locator("#reading").count() == 0
    assert fits_screen(phone)
    snap(phone, "dashboard-front-desk-phone")

    doctor = make_member(tenant, roles.RADIOLOGIST)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        log_in(page, home, doctor.email)
        assert page.inner_text("#stat-unread") == "1"
        with page.expect_navigation():
            page.locator("#reading").get_by_role("link", name="Front, Fiona").click()
        assert page.url.endswith(f"/studies/{study.pk}/")
        assert page.locator("textarea[name=findings]").is_visible()
        assert fits_screen(page)
    finally:
        context.close()
