"""The worklist on a phone, in headless Chromium: studies are cards, nothing overflows
sideways, a search keeps the patient's name out of the address bar, a card opens the study."""


import pytest

from tenants import roles
from tests.archive.study_rows import make_study
from tests.conftest import PASSWORD
from tests.e2e.conftest import NO_OVERFLOW, fits_screen, log_in

pytestmark = pytest.mark.browser



def test_worklist_on_a_phone(live_server, tenant, make_member, phone):
    viewer = make_member(tenant, roles.VIEWER)
    for i in range(3):
        make_study(tenant, name=f"Roe^Richard{i}", patient_id=f"MRN-{i}", study_date=f"2024010{i + 1}",
                   description="CT abdomen with a rather long description that must wrap", accession=f"A{i}",
                   referring="Housekeeping^Gregory^Maximilian")
    jane = make_study(tenant, name="Doe^Jane", patient_id="MRN-JANE", study_date="20240301")
    make_study(tenant, name="Long^Numbers", patient_id="4410982273645518", study_date="20240302",
               accession="202403020000123456", patient_sex="F", patient_birth_date="19800704")

    page = phone
    page.goto(f"{live_server.url}/t/{tenant.slug}/studies/")
    page.fill("input[name=email]", viewer.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"**/t/{tenant.slug}/studies/")

    assert page.locator("table.worklist tbody tr").count() == 5
    # Birth date and sex are two labelled values; an ID or accession number is one line,
    # never broken mid-number, even on a phone.
    card = page.locator("table.worklist tbody tr", has_text="Numbers")
    assert card.locator("td[data-label='Sex']").inner_text() == "F"
    assert "1980" in card.locator("td[data-label='Birth date']").inner_text()
    for label in ("Patient ID", "Accession", "Birth date"):
        lines = card.locator(f"td[data-label='{label}']").evaluate(
            "td => { const r = document.createRange(); r.selectNodeContents(td);"
            " return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; }")
        assert lines == 1, label
    assert not page.locator("table.worklist thead").is_visible()
    card = page.locator("table.worklist tbody tr").first
    assert card.evaluate("tr => getComputedStyle(tr).display") == "block"
    assert card.bounding_box()["width"] <= 390
    assert page.evaluate(NO_OVERFLOW)
    # The less used filters are folded away on the first screen, and open on demand.
    assert not page.locator("input[name=accession]").is_visible()
    page.click("text=More filters")
    assert page.locator("input[name=accession]").is_visible()

    page.fill("input[name=name]", "jane")
    page.click("form.wl-form button[type=submit]")
    page.wait_for_load_state()
    assert "jane" not in page.url.lower() and "?s=" in page.url
    assert page.locator("table.worklist tbody tr").count() == 1

    page.click("text=Doe, Jane")
    page.wait_for_url(f"**/t/{tenant.slug}/studies/{jane.pk}/")
    assert "MRN-JANE" in page.inner_text("main")
    assert page.evaluate(NO_OVERFLOW)


def test_worklist_on_a_desktop_keeps_identifiers_whole(live_server, tenant, make_member, desktop):
    """Ten columns share a laptop's width; the long free-text ones wrap, an ID, accession
    number or date never does."""
    viewer = make_member(tenant, roles.VIEWER)
    make_study(tenant, name="Long^Numbers", patient_id="4410982273645518", study_date="20240302",
               accession="202403020000123456", patient_sex="M", patient_birth_date="19800704",
               description="CT chest abdomen pelvis with contrast, follow-up of a known lesion",
               referring="Housekeeping^Gregory^Maximilian")
    page = desktop
    page.set_viewport_size({"width": 1024, "height": 768})
    log_in(page, f"{live_server.url}/t/{tenant.slug}/studies/", viewer.email)
    row = page.locator("table.worklist tbody tr", has_text="Numbers")
    assert row.locator("td[data-label='Sex']").inner_text() == "M"
    for label in ("Patient ID", "Accession", "Birth date", "Study date"):
        lines = row.locator(f"td[data-label='{label}']").evaluate(
            "td => { const r = document.createRange(); r.selectNodeContents(td);"
            " return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; }")
        assert lines == 1, label
    assert fits_screen(page)
