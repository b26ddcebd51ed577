"""A share link's whole journey in real Chromium: a radiologist shares a study from its
page and prints the patient's handout; the referrer, on a phone, opens the link, gets the
code wrong, then right, sees the share page and the images in the viewer; DICOMweb
outside the share is a 404; revoked, the link and the page show nothing; wrong codes lock."""

import zipfile

import pytest

from archive.sharing.models import Share
from archive.viewer import install
from tenants import roles
from tests.archive.dicomweb_data import ingest
from tests.dicom_factory import make_ct_series, to_bytes
from tests.e2e.conftest import PHONE, fits_screen, log_in, snap
from tests.e2e.test_viewer import _wait_rendered

pytestmark = pytest.mark.browser


def _ingest(tenant, name, pid, n=6):
    series = make_ct_series(n, rows=96, cols=96, patient_name=name, patient_id=pid, seed=11)
    return [ingest(tenant, to_bytes(ds)) for ds in series][0], series


def _share_from_study_page(page, live_server, tenant, study, download=False) -> tuple[str, str]:
    page.goto(f"{live_server.url}/t/{tenant.slug}/studies/{study.pk}/")
    with page.expect_navigation():
        page.get_by_role("link", name="Share", exact=True).click()
    page.fill("input[name=recipient_name]", "Dr Referrer")
    page.fill("input[name=recipient_email]", "referrer@example.org")
    page.fill("textarea[name=message]", "Please review before Tuesday.")
    if download:
        page.check("input[name=allow_download]")
    with page.expect_navigation():
        page.get_by_role("button", name="Create the link").click()
    return page.input_value("#share-url"), page.inner_text("#access-code")


def test_referrer_journey(live_server, browser, desktop, tenant, other_tenant, make_member, e2e_dirs):
    doctor = make_member(tenant, roles.RADIOLOGIST)
    study, series = _ingest(tenant, "Journey^Jo", "MRN-J1")
    _, hidden = _ingest(tenant, "Hidden^Hank", "MRN-J2", n=1)
    _, foreign = _ingest(other_tenant, "Foreign^Fran", "MRN-J3", n=1)
    log_in(desktop, f"{live_server.url}/t/{tenant.slug}/studies/", doctor.email)
    url, code = _share_from_study_page(desktop, live_server, tenant, study.study, download=True)
    assert url.startswith(f"{live_server.url}/s/") and len(code) == 8
    # The handout prints alone: link as text, QR code, the code; on screen it is hidden.
    assert not desktop.locator(".handout").is_visible()
    desktop.emulate_media(media="print")
    assert desktop.locator(".handout").is_visible() and desktop.locator(".handout .qr svg").count() == 1
    assert url in desktop.inner_text(".handout") and code in desktop.inner_text(".handout")
    assert not desktop.locator(".topbar").is_visible()
    snap(desktop, "share-handout-print")
    desktop.emulate_media(media="screen")

    context = browser.new_context(**PHONE)
    context.set_default_timeout(15_000)
    phone = context.new_page()
    phone.goto(url)
    phone.fill("#answer", "00000000")
    with phone.expect_navigation():
        phone.click("main button[type=submit]")
    assert "not right" in phone.inner_text("main")
    phone.fill("#answer", code)
    with phone.expect_navigation():
        phone.click("main button[type=submit]")
    assert "/s/v/" in phone.url and url.rsplit("/", 1)[1] not in phone.url
    assert "Please review before Tuesday." in phone.inner_text("main")
    assert fits_screen(phone)
    snap(phone, "share-page-phone")
    share_page = phone.url
    # The download: a zip of the study's files with a DICOMDIR, named without PHI.
    with phone.expect_download() as download:
        phone.get_by_role("link", name="Download (zip)").click()
    assert download.value.suggested_filename == f"study-{study.study_id}.zip"
    with zipfile.ZipFile(download.value.path()) as archive:
        assert archive.namelist()[0] == "DICOMDIR" and len(archive.namelist()) == 1 + len(series)
    # DICOMweb outside the share, from the referrer's own browser session: 404.
    for ds in (hidden[0], foreign[0]):
        status = phone.evaluate("u => fetch(u).then(r => r.status)",
                                f"{share_page}dicomweb/studies/{ds.StudyInstanceUID}/metadata")
        assert status == 404
    if install.installed():
        with phone.expect_navigation():
            phone.get_by_role("link", name="View images").first.click()
        assert _wait_rendered(phone).std() > 5
        snap(phone, "share-viewer-phone")
    # The clinic revokes it (from the Shares page): the referrer's next request gets nothing.
    desktop.goto(f"{live_server.url}/t/{tenant.slug}/shares/")
    questions = []
    desktop.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    with desktop.expect_navigation():
        desktop.get_by_role("button", name="Revoke").click()
    assert Share.objects.for_tenant(tenant).get().is_revoked and "cannot be undone" in questions[0]
    response = phone.goto(share_page)
    assert response.status == 410 and "withdrawn" in phone.inner_text("main") and "Journey" not in phone.content()
    response = phone.goto(url)
    assert response.status == 410 and "withdrawn" in phone.inner_text("main")
    context.close()


def test_wrong_codes_lock_the_link(live_server, browser, desktop, tenant, make_member, e2e_dirs, settings):
    doctor = make_member(tenant, roles.RADIOLOGIST)
    study, _ = _ingest(tenant, "Lock^Lee", "MRN-L1", n=1)
    log_in(desktop, f"{live_server.url}/t/{tenant.slug}/studies/", doctor.email)
    url, code = _share_from_study_page(desktop, live_server, tenant, study.study)
    context = browser.new_context(**PHONE)
    phone = context.new_page()
    phone.goto(url)
    for _ in range(settings.SHARE_MAX_FAILURES):
        phone.fill("#answer", "11111111")
        with phone.expect_navigation():
            phone.click("main button[type=submit]")
    assert "Too many wrong tries" in phone.inner_text("main")
    response = phone.goto(url)  # still the form, but the right code is refused while locked
    phone.fill("#answer", code)
    with phone.expect_navigation():
        phone.click("main button[type=submit]")
    assert "Too many wrong tries" in phone.inner_text("main") and response.status == 200
    context.close()


def test_deidentified_share_shows_no_phi_on_the_page_or_the_wire(live_server, browser, tenant, e2e_dirs):
    from archive.models import Study
    from archive.sharing.services import share_create
    from tenants.audit import Actor

    series = make_ct_series(8, rows=96, cols=96, patient_name="Secret^Sally", patient_id="SECRET-ID-42",
                            birth_date="19510203", accession="SECRET-ACC-7", referring="Leaky^Lou", seed=4)
    for ds in series:
        ds.InstitutionName = "Hush Hospital"
        ingest(tenant, to_bytes(ds))
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=series[0].StudyInstanceUID)
    made = share_create(tenant=tenant, study=study, actor=Actor.system("test"), access_code="12345678",
                        deidentify=True)
    secrets = ["Secret", "Sally", "SECRET-ID-42", "19510203", "SECRET-ACC-7", "Leaky", "Hush Hospital",
               series[0].StudyInstanceUID, series[0].SeriesInstanceUID, series[0].SOPInstanceUID]
    context = browser.new_context(**PHONE)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    responses, bodies = [], []

    def keep(response):  # read at once: a page navigated away from keeps no bodies
        responses.append(response)
        if response.status == 200 and "/s/v/" in response.url:
            bodies.append(response.body().decode("latin-1"))

    tab.on("response", keep)
    tab.goto(f"{live_server.url}/s/{made.token}")
    tab.fill("#answer", "12345678")
    with tab.expect_navigation():
        tab.click("main button[type=submit]")
    assert "De-identified images" in tab.inner_text("main")
    snap(tab, "share-deidentified-phone")
    if install.installed():
        with tab.expect_navigation():
            tab.get_by_role("link", name="View images").click()
        assert _wait_rendered(tab).std() > 5
    texts = [tab.content(), tab.inner_text("body"), *bodies]
    leaked = sorted({s for s in secrets for t in texts if s in t})
    assert leaked == [], leaked
    assert any("/dicomweb/" in r.url for r in responses) or not install.installed()
    context.close()
