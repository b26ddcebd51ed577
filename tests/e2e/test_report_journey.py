"""A radiologist's reading in Chromium: the worklist shows what is unread, the study page
takes a draft, signs it, amends it (the signed version kept), and the worklist's filter and
badge follow; on a phone the report reads first and nothing scrolls sideways."""

import pytest

from archive.reports.models import ReportVersion
from tenants import roles
from tests.archive.retention_helpers import ingest_series, past, tier1  # noqa: F401
from tests.e2e.conftest import fits_screen, log_in, snap

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("tier1")]


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_radiologist_reads_signs_and_amends(request, screen, live_server, tenant, make_member):
    page = request.getfixturevalue(screen)
    doctor = make_member(tenant, roles.RADIOLOGIST)
    ingest_series(tenant, study_date=past(0), n=1, patient_name="Reader^Rita")
    ingest_series(tenant, study_date=past(0), n=1, patient_name="Other^Otto", patient_id="P-OTTO", seed=7)
    worklist = f"{live_server.url}/t/{tenant.slug}/studies/"
    log_in(page, worklist, doctor.email)
    row = page.locator("table.worklist tbody tr", has_text="Reader, Rita")
    assert row.locator(".read").inner_text() == "Unread"

    with page.expect_navigation():
        row.get_by_role("link", name="Reader, Rita").click()
    page.select_option("#report-assignee", label=doctor.email)
    with page.expect_navigation():
        page.click(".report-assign button")
    assert doctor.email in page.inner_text("#report-reader")
    page.fill("textarea[name=findings]", "Lungs clear.\nNo effusion.")
    page.fill("textarea[name=impression]", "Normal chest.")
    with page.expect_navigation():
        page.get_by_role("button", name="Save draft").click()
    assert "Draft saved" in page.inner_text(".messages")
    assert page.input_value("textarea[name=findings]") == "Lungs clear.\nNo effusion."
    with page.expect_navigation():
        page.get_by_role("button", name="Sign as final").click()
    assert "Report signed" in page.inner_text(".messages")
    assert "Normal chest." in page.inner_text("#report-current")
    assert page.locator("textarea[name=findings]").count() == 0  # signed: no editing in place
    assert fits_screen(page)
    snap(page, f"report-signed-{screen}")

    with page.expect_navigation():
        page.get_by_role("button", name="Amend").click()
    assert "Amending the signed report" in page.inner_text("#report")
    page.fill("textarea[name=impression]", "Normal chest. Old rib fracture, healed.")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign as final").click()
    assert "Old rib fracture" in page.inner_text("#report-current")
    page.click("text=Earlier versions (1)")
    assert "Normal chest." in page.inner_text(".report-history")
    versions = list(ReportVersion.objects.for_tenant(tenant).order_by("number").values_list("state", "impression"))
    assert versions == [("final", "Normal chest."), ("final", "Normal chest. Old rib fracture, healed.")]
    assert fits_screen(page)

    # The worklist: a final badge, and the unread filter leaves the other study.
    page.goto(worklist)
    assert page.locator("table.worklist tbody tr", has_text="Reader, Rita").locator(".read").inner_text() == "Final"
    page.click("text=More filters")
    page.select_option("select[name=read_status]", "unread")
    with page.expect_navigation():
        page.click("form.wl-form button[type=submit]")
    names = page.locator("table.worklist tbody td.patient a").all_inner_texts()
    assert names == ["Other, Otto"]
    if not page.locator("input[name=mine]").is_visible():
        page.click("text=More filters")
    page.select_option("select[name=read_status]", "")
    page.check("input[name=mine]")
    with page.expect_navigation():
        page.click("form.wl-form button[type=submit]")
    assert page.locator("table.worklist tbody td.patient a").all_inner_texts() == ["Reader, Rita"]
    assert fits_screen(page)
