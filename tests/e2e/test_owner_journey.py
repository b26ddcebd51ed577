"""The clinic owner sets up a script that sends studies by DICOMweb: log in with a TOTP
second factor, create an API token (its secret shown once), STOW a study with it from
Python `requests`, find the study in the worklist, and read the token's upload in the
audit log."""

import pytest
import requests
from django_otp.plugins.otp_totp.models import TOTPDevice
from pydicom.uid import generate_uid

from archive.models import Study
from tenants.models import ApiToken
from tests.archive.stow_helpers import multipart
from tests.dicom_factory import make_ct_series, to_bytes
from tests.e2e.conftest import fits_screen, log_in, nav_to, snap

pytestmark = pytest.mark.browser


def test_owner_creates_a_token_and_a_script_stows_with_it(live_server, tenant, owner, phone, e2e_dirs):
    page = phone
    device = TOTPDevice.objects.create(user=owner, name="owner's phone", confirmed=True)
    log_in(page, f"{live_server.url}/t/{tenant.slug}/", owner.email, totp_device=device)
    page.click("button.nav-toggle")
    assert page.locator("#mainnav").is_visible()
    assert fits_screen(page)
    snap(page, "menu-open-phone")
    menu = page.locator("#mainnav").inner_text()
    for label in ("Members", "Settings", "API tokens", "Audit log", "Deletions"):
        assert label in menu

    nav_to(page, "API tokens")
    page.fill("input[name=name]", "nightly import")
    page.check("input[name=scopes][value=upload]")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    raw = page.inner_text("#new-token-secret").strip()
    token = ApiToken.objects.for_tenant(tenant).get(name="nightly import")
    assert token.scopes == ["upload"] and raw.startswith(token.token_hint)
    assert fits_screen(page)
    snap(page, "tokens-created-phone")
    # Shown once: the page opened again no longer has it.
    page.goto(page.url)
    assert page.locator("#new-token-secret").count() == 0
    assert raw not in page.content()

    study_uid = generate_uid()
    body, content_type = multipart([to_bytes(ds) for ds in make_ct_series(
        2, rows=16, cols=16, study_uid=study_uid, patient_name="Script^Sam", patient_id="MRN-S-1")])
    stow_url = f"{live_server.url}/t/{tenant.slug}/dicomweb/studies"
    answer = requests.post(stow_url, data=body, timeout=30, headers={
        "Authorization": f"Bearer {raw}", "Content-Type": content_type, "Accept": "application/dicom+json"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["00081199"]["Value"]) == 2  # ReferencedSOPSequence: both stored
    # The token may upload but not read: its own scope is all it gets.
    search = requests.get(stow_url, headers={"Authorization": f"Bearer {raw}"}, timeout=30)
    assert search.status_code == 403
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=study_uid)

    nav_to(page, "Studies")
    card = page.locator("table.worklist tbody tr", has_text="Script, Sam")
    assert card.count() == 1 and "MRN-S-1" in card.inner_text()
    with page.expect_navigation():
        card.get_by_role("link", name="Script, Sam").click()
    # An owner may ask for a deletion from the study page (a second admin approves).
    delete_link = page.get_by_role("link", name="Request deletion")
    assert delete_link.get_attribute("href") == f"/t/{tenant.slug}/studies/{study.pk}/delete/"

    nav_to(page, "Audit log")
    page.fill("input[name=action]", "dicomweb.stow")
    with page.expect_navigation():
        page.click("form.audit-filters button[type=submit]")
    events = page.locator("table.audit tbody tr")
    assert events.count() == 1
    event = events.first.inner_text()
    assert "token nightly import" in event and study_uid in event and "stored: 2" in event
    assert fits_screen(page)
    snap(page, "audit-phone")
