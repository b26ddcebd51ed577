"""The front desk fixes a mistyped name on a phone, in Chromium, and takes it back: the
study page shows the change with before and after, and Revert restores the original."""

import pytest

from archive.models import Study
from archive.outbox.models import Outbox
from archive.outbox.services import outbox_advance_many
from tenants import roles
from tests.archive.retention_helpers import ingest_series, past, tier1  # noqa: F401
from tests.e2e.conftest import fits_screen, log_in, snap

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("tier1")]


def test_front_desk_corrects_a_name_and_reverts_it(live_server, tenant, make_member, phone):
    study = ingest_series(tenant, study_date=past(0), n=2, patient_name="Jonhson^Mary", patient_id="MRN-9")
    rows = list(Outbox.objects.for_tenant(tenant).filter(kind="archive", done_at=None).values_list("pk", flat=True))
    assert all(r is True for r in outbox_advance_many(rows).values())  # both regions hold the images
    desk = make_member(tenant, roles.FRONT_DESK)
    page = phone
    study_url = f"{live_server.url}/t/{tenant.slug}/studies/{study.pk}/"
    log_in(page, study_url, desk.email)
    page.click("text=Correct the patient details or accession number")
    assert page.input_value("input[name=family_name]") == "Jonhson"
    page.fill("input[name=family_name]", "Johnson")
    page.fill("input[name=reason]", "typo at registration")
    with page.expect_navigation():
        page.get_by_role("button", name="Correct all 2 images").click()
    assert "Correcting PatientName on 2 images" in page.inner_text(".messages")
    assert "applying: 0 of 2 images" in page.inner_text(".correction-history")  # the page refreshes itself
    # The worker's part, run here; the page's next refresh shows the result.
    rows = list(Outbox.objects.for_tenant(tenant).filter(kind="correct", done_at=None).values_list("pk", flat=True))
    assert all(r is True for r in outbox_advance_many(rows).values())
    page.locator("h1", has_text="Johnson, Mary").wait_for(timeout=15_000)
    assert page.locator(".correction-progress").count() == 0
    history = page.inner_text(".correction-history")
    assert "Jonhson^Mary" in history and "Johnson^Mary" in history
    assert fits_screen(page)
    snap(page, "study-corrected-phone")

    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.locator(".correction-history").get_by_role("button", name="Revert").click()
    assert "Reverting the correction" in page.inner_text(".messages")
    assert "reverting: 0 of 2 images" in page.inner_text(".correction-history")
    rows = list(Outbox.objects.for_tenant(tenant).filter(kind="correct", done_at=None).values_list("pk", flat=True))
    assert all(r is True for r in outbox_advance_many(rows).values())
    page.locator("h1", has_text="Jonhson, Mary").wait_for(timeout=15_000)  # the page refreshes itself
    assert "reverted" in page.inner_text(".correction-history")
    assert Study.objects.for_tenant(tenant).get(pk=study.pk).patient_name == "Jonhson^Mary"
