"""A clinic's API tokens: create (secret shown once), list, revoke."""

from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from tenants.decorators import require_perm
from tenants.forms import TokenCreateForm
from tenants.models import ApiToken
from tenants.services import api_token_create, api_token_revoke

PERM = "tenant.manage_tokens"


@require_perm(PERM)
@never_cache
def tokens(request: HttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST or None)
    new = None
    if request.method == "POST" and form.is_valid():
        form_id = form.cleaned_data["form_id"]
        if form_id and not cache.add(f"token-form:{request.tenant.pk}:{form_id}", True, timeout=24 * 3600):
            messages.info(request, "That form was sent before and its token created then; the "
                                   "secret was shown once. Revoke it below if it was not copied.")
            return redirect("clinic:tokens", tenant_slug=request.tenant.slug)
        token, raw = api_token_create(tenant=request.tenant, name=form.cleaned_data["name"],
                                      scopes=form.cleaned_data["scopes"],
                                      actor=request.principal.actor(request),
                                      created_by=request.principal.user)
        # The secret is in this response only: never stored (not even in the session), so it
        # cannot be shown again. The page tells the user to copy it now.
        new = {"token": token, "raw": raw}
        form = TokenCreateForm()
    return render(request, "tenants/tokens.html", {
        "form": form,
        "new_token": new,
        "tokens": ApiToken.objects.for_tenant(request.tenant).select_related("created_by")
                  .order_by("revoked_at", "-created_at"),
    }, status=400 if form.is_bound and not form.is_valid() else 200)


@require_POST
@require_perm(PERM)
def token_delete(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken.objects.for_tenant(request.tenant), pk=token_id)
    was_active = token.is_active
    api_token_revoke(token=token, actor=request.principal.actor(request))
    if was_active:
        messages.success(request, f"Token “{token.name}” was revoked; it no longer works.")
    return redirect("clinic:tokens", tenant_slug=request.tenant.slug)
