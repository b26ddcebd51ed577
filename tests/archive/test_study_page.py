"""The study page: attributes, series, size, storage state, links, audit, isolation."""

import io
import re
import zipfile

import pytest
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone

from archive.models import Instance
from archive.outbox.models import Outbox
from archive.selectors.studies import study_storage_state
from tenants import roles
from tenants.audit import AuditEvent
from tests.archive.study_rows import ingest_study


def page_url(tenant, study) -> str:
    return reverse("archive:study", kwargs={"tenant_slug": tenant.slug, "pk": study.pk})


def test_shows_the_study_and_audits_the_view(client, login, make_member, tenant):
    study = ingest_study(tenant)
    user = make_member(tenant, roles.VIEWER)
    response = login(user).get(page_url(tenant, study))
    assert response.status_code == 200
    body = response.content.decode()
    for text in ["Doe, Jane", "MRN-42", "ACC-9", "2024-01-31", study.study_instance_uid, "CT, MR",
                 "2 series, 5 images", "T2 axial"]:
        assert text in body, text
    assert study.size_bytes > 0
    event = AuditEvent.objects.for_tenant(tenant).get(action="study.viewed")
    assert (event.object_type, event.object_id, event.actor_label) == ("study", str(study.pk), user.email)
    assert event.detail["study_uid"] == study.study_instance_uid


def test_series_sizes_add_up(tenant):
    from archive.selectors.studies import study_series

    study = ingest_study(tenant)
    series = list(study_series(study=study))
    assert [s.modality for s in series] and sum(s.num_instances for s in series) == 5
    assert sum(s.size_bytes for s in series) == study.size_bytes


def test_storage_state_counts_the_outbox(client, login, make_member, tenant):
    study = ingest_study(tenant)
    # Archive work only: a billing row's subject is a study, whose pk may equal an instance's.
    rows = Outbox.objects.for_tenant(tenant).filter(kind="archive",
        subject_id__in=Instance.objects.for_tenant(tenant).filter(study=study).values("pk")).order_by("pk")
    assert rows.count() == 5  # no worker ran: every instance is still to be archived
    state = study_storage_state(study=study)
    assert (state.outbox_pending, state.outbox_done, state.complete) == (5, 0, False)
    Outbox.objects.for_tenant(tenant).filter(pk__in=list(rows.values_list("pk", flat=True)[:2])).update(
        done_at=timezone.now())
    Outbox.objects.for_tenant(tenant).filter(kind="archive", done_at__isnull=True).update(attempts=1)
    state = study_storage_state(study=study)
    assert (state.outbox_pending, state.outbox_done, state.outbox_failing) == (3, 2, 3)
    body = login(make_member(tenant, roles.VIEWER)).get(page_url(tenant, study)).content.decode()
    assert "3 of 5 images are still being archived" in body and "failed at least once" in body
    assert {r.region for r in state.regions} >= {"primary", "secondary"}
    assert all(r.total == 5 for r in state.regions)
    assert "primary" in body


def test_another_clinics_study_is_404(client, login, make_member, tenant, other_tenant):
    theirs = ingest_study(other_tenant)
    c = login(make_member(tenant, roles.RADIOLOGIST))
    assert c.get(page_url(tenant, theirs)).status_code == 404  # their pk in my clinic
    assert c.get(page_url(other_tenant, theirs)).status_code == 404  # their clinic
    assert c.get(reverse("archive:study", kwargs={"tenant_slug": tenant.slug, "pk": 999999})).status_code == 404
    assert not AuditEvent.objects.for_tenant(tenant).filter(action="study.viewed").exists()


def test_links_only_what_exists(client, login, make_member, tenant):
    study = ingest_study(tenant)
    body = login(make_member(tenant, roles.RADIOLOGIST)).get(page_url(tenant, study)).content.decode()
    for href in re.findall(r'href="(/t/[^"]+)"', body):
        try:
            match = resolve(href.split("?")[0])
        except Resolver404:
            pytest.fail(f"the study page links to {href}, which does not exist")
        assert "GET" in getattr(match.func, "by_method", {"GET": None}), f"{href} does not answer GET"


@pytest.mark.parametrize("role, shown", [(roles.RADIOLOGIST, True), (roles.VIEWER, False)])
def test_download_link_needs_download_permission(client, login, make_member, tenant, role, shown):
    study = ingest_study(tenant)
    body = login(make_member(tenant, role)).get(page_url(tenant, study)).content.decode()
    assert ("Download (zip)" in body) is shown


def test_download_link_downloads_the_study(client, login, make_member, tenant):
    """The link gives the study as a zip a person can open: every instance as stored, and
    a DICOMDIR (tests/archive/test_download_zip.py checks the zip itself)."""
    study = ingest_study(tenant)
    c = login(make_member(tenant, roles.RADIOLOGIST))
    body = c.get(page_url(tenant, study)).content.decode()
    href = re.search(r'href="([^"]+)"[^>]*>Download \(zip\)', body).group(1)
    response = c.get(href, HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
    assert names[0] == "DICOMDIR" and len(names) == 1 + study.num_instances == 6
