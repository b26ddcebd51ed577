"""Token scopes are enforced by `require_perm`: `read` cannot do what needs `upload`.

A tiny view needing archive.upload is mounted under /t/<slug>/ for these tests only, so the
check runs through the real TenantMiddleware and decorator without depending on archive URLs.
"""

import pytest
from django.http import JsonResponse
from django.urls import include, path

from tenants.decorators import require_perm


@require_perm("archive.upload")
def _upload_probe(request):
    return JsonResponse({"ok": True, "tenant": request.tenant.slug})


urlpatterns = [
    path("t/<slug:tenant_slug>/probe/upload/", _upload_probe),
    path("", include("tenants.urls")),
]

pytestmark = pytest.mark.urls(__name__)


def test_read_scope_cannot_upload(client, tenant, make_token):
    raw = make_token(tenant, scopes=["read"])
    response = client.post("/t/acme/probe/upload/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 403
    assert "archive.upload" in response.json()["error"]


def test_upload_scope_can(client, tenant, make_token):
    raw = make_token(tenant, scopes=["upload"])
    response = client.post("/t/acme/probe/upload/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200 and response.json() == {"ok": True, "tenant": "acme"}


def test_token_of_other_clinic_is_404(client, tenant, other_tenant, make_token):
    raw = make_token(other_tenant, scopes=["upload"])
    response = client.post("/t/acme/probe/upload/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 404


def test_unknown_token_is_401(client, tenant):
    response = client.post("/t/acme/probe/upload/", HTTP_AUTHORIZATION="Bearer cpk_nonsense")
    assert response.status_code == 401
