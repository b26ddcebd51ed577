"""Pages with patient data are not kept by the browser (no-store): a member's pages and a
share visitor's; the sign-in page and static files are not concerned."""

from django.test import Client
from django.urls import reverse

from tenants import roles
from tests.archive.test_sharing import _create, _open, _study


def _no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


def test_a_members_pages_and_a_share_visitors_are_not_kept(login, make_member, tenant):
    member = login(make_member(tenant, roles.RADIOLOGIST))
    study, _ = _study(tenant)
    for url in (reverse("archive:worklist", kwargs={"tenant_slug": tenant.slug}),
                reverse("archive:study", kwargs={"tenant_slug": tenant.slug, "pk": study.pk}),
                reverse("clinic:dashboard", kwargs={"tenant_slug": tenant.slug})):
        response = member.get(url)
        assert response.status_code == 200 and _no_store(response), url
    url, code = _create(member, tenant, study)
    visitor, page = _open(url, code)
    assert _no_store(visitor.get(page))
    assert not _no_store(Client().get("/static/css/app.css"))
