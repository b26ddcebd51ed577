"""A technologist uploads a study from the browser, on a phone and on a desktop: log in,
open Upload from the menu, choose DICOM files, a zip of another series and a file that is
not DICOM; watch per-file and overall progress; read the summary (stored / rejected with
the reason); find the study in the worklist and open it: two series."""

import zipfile

import pytest
from pydicom.uid import generate_uid

from archive.models import Instance, Study
from archive.outbox.models import Outbox
from tenants import roles
from tests.dicom_factory import make_ct_series, to_bytes
from tests.e2e.conftest import fits_screen, log_in, nav_to, snap

pytestmark = pytest.mark.browser


def _files(tmp_path, study_uid: str) -> list:
    """Three CT slices as loose files, a zip holding a second series of two slices, and a
    text file that is not DICOM."""
    loose = make_ct_series(3, rows=16, cols=16, study_uid=study_uid, patient_name="Upload^Uma",
                           patient_id="MRN-UP-1", seed=1)
    zipped = make_ct_series(2, rows=16, cols=16, study_uid=study_uid, patient_name="Upload^Uma",
                            patient_id="MRN-UP-1", seed=2)
    paths = []
    for number, ds in zip((10, 1, 2), loose, strict=True):
        path = tmp_path / f"slice{number}.dcm"
        path.write_bytes(to_bytes(ds))
        paths.append(path)
    archive = tmp_path / "series2.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, ds in enumerate(zipped):
            ds.SeriesNumber = 2
            zf.writestr(f"series2/IM{i}", to_bytes(ds))
    paths.append(archive)
    notes = tmp_path / "notes.txt"
    notes.write_text("Not an image, just the referral letter.\n")
    paths.append(notes)
    return paths


@pytest.mark.parametrize("screen", ["phone", "desktop"])
def test_technologist_uploads_a_study(request, screen, live_server, tenant, make_member, e2e_dirs):
    page = request.getfixturevalue(screen)
    tech = make_member(tenant, roles.TECHNOLOGIST)
    study_uid = generate_uid()
    files = _files(e2e_dirs, study_uid)
    dashboard = f"{live_server.url}/t/{tenant.slug}/"

    log_in(page, dashboard, tech.email)
    # A technologist may upload and view, nothing of the clinic's administration.
    menu = page.locator("#mainnav").inner_text()
    assert "Upload" in menu and "Studies" in menu
    assert "Members" not in menu and "Audit log" not in menu and "Settings" not in menu
    assert page.locator("#dicom-ae").inner_text() == tenant.ae_title
    nav_to(page, "Upload")
    assert page.url.endswith(f"/t/{tenant.slug}/upload/")
    # The file inputs hide inside their buttons: a button to tap, no browser widget.
    assert page.get_by_text("Choose files").is_visible() and not page.locator("#pick-files").is_visible()
    assert fits_screen(page)
    snap(page, f"upload-empty-{screen}")

    # Chosen in the disk's order; the rows come in the files' own (numbers as numbers).
    page.set_input_files("#pick-files", [str(p) for p in files])
    # Progress: the overall bar appears at once, one row with its own bar per chosen file.
    page.wait_for_selector("#overall:not([hidden])")
    rows = page.locator("#files li")
    assert rows.count() == len(files)
    assert page.locator("#files li progress").count() == len(files)
    page.wait_for_selector("#summary:not([hidden])")
    summary = page.inner_text("#summary")
    assert summary == "Done: 5 stored, 0 already present, 1 rejected, 0 skipped (1 study)."
    assert page.locator("#overall-text").inner_text().startswith("100% of ")
    assert page.eval_on_selector("#overall-bar", "b => b.value === b.max")
    assert page.eval_on_selector_all("#files li progress", "bars => bars.every(b => b.value === 1)")
    names = [rows.nth(i).locator(".name").inner_text() for i in range(rows.count())]
    assert names == ["notes.txt", "series2.zip", "slice1.dcm", "slice2.dcm", "slice10.dcm"]
    by_name = {name: rows.nth(i).locator(".status") for i, name in enumerate(names)}
    assert by_name["slice1.dcm"].inner_text() == "stored"
    assert by_name["series2.zip"].inner_text().startswith("2 files in the zip, 2 stored")
    rejected = by_name["notes.txt"]
    assert rejected.inner_text() == "rejected: not a DICOM file"
    assert "st-rejected" in rejected.get_attribute("class")
    assert fits_screen(page)
    snap(page, f"upload-done-{screen}")

    study = Study.objects.for_tenant(tenant).get(study_instance_uid=study_uid)
    assert (study.num_series, study.num_instances) == (2, 5)
    # A link to the study the upload made, under the summary.
    links = page.locator("#studies a")
    assert links.count() == 1 and links.first.inner_text() == "Upload, Uma"
    assert links.first.get_attribute("href") == f"/t/{tenant.slug}/studies/{study.pk}/"
    assert Instance.objects.for_tenant(tenant).count() == 5
    # Each stored image waits for its copies to both regions (no worker runs here).
    assert Outbox.objects.for_tenant(tenant).filter(done_at__isnull=True, kind="archive").count() == 5

    nav_to(page, "Studies")
    card = page.locator("table.worklist tbody tr", has_text="Upload, Uma")
    assert card.count() == 1
    assert fits_screen(page)
    snap(page, f"worklist-{screen}")
    with page.expect_navigation():
        card.get_by_role("link", name="Upload, Uma").click()
    assert page.url.endswith(f"/studies/{study.pk}/")
    assert "2 series, 5 images" in page.inner_text("main")
    assert page.locator("#series tbody tr").count() == 2
    assert "MRN-UP-1" in page.inner_text("main")
    # No deletion request for a technologist (archive.delete_request is an admin's).
    assert page.get_by_role("link", name="Request deletion").count() == 0
    assert fits_screen(page)
    snap(page, f"study-{screen}")

    # Back on the dashboard, the counts include the upload and say it is being archived.
    nav_to(page, tenant.name)
    assert page.inner_text("#stat-studies") == "1"
    assert page.inner_text("#stat-instances") == "5"
    assert page.inner_text("#stat-pending") == "5"
    assert "not yet copied to both storage regions" in page.inner_text("#storage-state")
