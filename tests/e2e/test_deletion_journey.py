"""A practice with one admin deletes a study sent by mistake, on a phone in Chromium: the
request page says it will wait, the list says when it runs, and it can be cancelled."""

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from archive.retention.models import DeletionRequest
from tests.archive.retention_helpers import ingest_series, past, tier1  # noqa: F401
from tests.e2e.conftest import fits_screen, log_in, snap

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("tier1")]


def test_one_admin_requests_a_deletion_and_cancels_it(live_server, tenant, owner, phone, settings, mailoutbox):
    settings.DELETION_COOLING_OFF_DAYS = 7
    study = ingest_series(tenant, study_date=past(0), n=1)
    device = TOTPDevice.objects.create(user=owner, name="owner's phone", confirmed=True)
    page = phone
    study_page = f"{live_server.url}/t/{tenant.slug}/studies/{study.pk}/"
    log_in(page, study_page, owner.email, totp_device=device)
    with page.expect_navigation():
        page.get_by_role("link", name="Request deletion").click()
    assert "waits 7 days" in page.inner_text("#cooling-off-note")
    assert fits_screen(page)
    page.fill("textarea[name=reason]", "Sent to our clinic by mistake")
    page.check("input[name=override_retention]")
    with page.expect_navigation():
        page.click("button.danger")
    assert "unless someone cancels it" in page.inner_text(".messages")
    row = page.locator("table tbody tr", has_text=study.study_instance_uid)
    request = DeletionRequest.objects.for_tenant(tenant).get()
    assert f"Runs {request.runs_after:%Y-%m-%d}" in row.inner_text()
    assert fits_screen(page)
    snap(page, "deletion-cooling-off-phone")
    assert len(mailoutbox) == 1

    with page.expect_navigation():
        row.get_by_role("button", name="Cancel").click()
    assert "cancelled" in page.inner_text(".messages").lower()
    request.refresh_from_db()
    assert request.state == "cancelled"
