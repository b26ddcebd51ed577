"""A clinic's members page: list, invite, change role, remove, revoke invitations."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from tenants import roles
from tenants.audit import audit_record
from tenants.decorators import require_perm
from tenants.forms import InviteForm, RoleForm
from tenants.models import Invitation, Membership
from tenants.password_reset import address_allowed, reset_email_send
from tenants.services import (
    MemberChangeRefused,
    invitation_create,
    invitation_revoke,
    invitation_url,
    member_remove,
    member_role_change,
)

PERM = "tenant.manage_members"


def _grantable(request: HttpRequest) -> list[str]:
    return roles.GRANTABLE_ROLES.get(request.principal.role or "", [])


def _page(request: HttpRequest, invite_form: InviteForm | None = None, error: str = "",
          status: int = 200, new_link: dict | None = None) -> HttpResponse:
    tenant = request.tenant
    grantable = _grantable(request)
    members = Membership.objects.for_tenant(tenant).select_related("user").order_by("user__email")
    pending = (Invitation.objects.for_tenant(tenant).filter(accepted_at=None, revoked_at=None)
               .order_by("-created_at"))
    labels = dict(roles.ROLE_CHOICES)
    return render(request, "tenants/members.html", {
        "members": [{"m": m, "editable": m.role in grantable} for m in members],
        "pending": pending,
        "now": timezone.now(),
        "invite_form": invite_form or InviteForm(grantable=grantable),
        "role_choices": [(r, labels[r]) for r in grantable],
        "error": error,
        "new_link": new_link,
    }, status=status)


@require_perm(PERM)
def members(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _page(request)
    form = InviteForm(request.POST, grantable=_grantable(request))
    if not form.is_valid():
        return _page(request, invite_form=form, status=400)
    return _invite(request, email=form.cleaned_data["email"], role=form.cleaned_data["role"], form=form)


def _invite(request: HttpRequest, *, email: str, role: str, form: InviteForm | None = None) -> HttpResponse:
    """Create (or replace) the invitation and show its link once, beside whether the email
    went out: the link is stored hashed, so this page is the only place it can be copied."""
    try:
        invitation, raw = invitation_create(tenant=request.tenant, email=email, role=role,
                                            by_role=request.principal.role, invited_by=request.principal.user,
                                            actor=request.principal.actor(request))
    except MemberChangeRefused as exc:
        if form is None:
            return _page(request, error=str(exc), status=400)
        form.add_error("email", str(exc))
        return _page(request, invite_form=form, status=400)
    # Rendered, not redirected: a reload asks the browser to post again, rather than
    # keeping the link anywhere to show it a second time; and no cache keeps the page.
    response = _page(request, new_link={"invitation": invitation, "url": invitation_url(raw)})
    add_never_cache_headers(response)
    return response


@require_POST
@require_perm(PERM)
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership.objects.for_tenant(request.tenant), pk=membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _page(request, error="Choose one of the listed roles.", status=400)
    try:
        changed = member_role_change(membership=membership, role=form.cleaned_data["role"],
                                     by_role=request.principal.role,
                                     actor=request.principal.actor(request))
    except MemberChangeRefused as exc:
        return _page(request, error=str(exc), status=400)
    if changed:
        messages.success(request, f"{membership.user.email} is now {form.cleaned_data['role']}.")
    return redirect("clinic:members", tenant_slug=request.tenant.slug)


@require_POST
@require_perm(PERM)
def member_delete(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership.objects.for_tenant(request.tenant), pk=membership_id)
    try:
        member_remove(membership=membership, by_role=request.principal.role,
                      actor=request.principal.actor(request))
    except MemberChangeRefused as exc:
        return _page(request, error=str(exc), status=400)
    messages.success(request, f"{membership.user.email} was removed from the clinic.")
    if membership.user_id == request.principal.user.pk:
        return redirect("home")  # they removed themselves: this clinic is no longer theirs
    return redirect("clinic:members", tenant_slug=request.tenant.slug)


@require_POST
@require_perm(PERM)
def invitation_renew(request: HttpRequest, invitation_id: int) -> HttpResponse:
    """A new link for a pending invitation (the old one stops working), emailed again and
    shown once: for a lost email, an expired link, or a link that was never copied."""
    invitation = get_object_or_404(Invitation.objects.for_tenant(request.tenant), pk=invitation_id,
                                   accepted_at=None, revoked_at=None)
    return _invite(request, email=invitation.email, role=invitation.role)


@require_POST
@require_perm(PERM)
def invitation_delete(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation.objects.for_tenant(request.tenant), pk=invitation_id)
    if invitation_revoke(invitation=invitation, actor=request.principal.actor(request)):
        messages.success(request, f"The invitation to {invitation.email} was withdrawn.")
    return redirect("clinic:members", tenant_slug=request.tenant.slug)


@require_POST
@require_perm(PERM)
def member_password_reset(request: HttpRequest, membership_id: int) -> HttpResponse:
    """Email a member a link to set a new password: for whoever cannot log in and cannot
    wait for "Forgot password". The link goes only to their address, never to the admin,
    who must not be able to take over the account."""
    membership = get_object_or_404(Membership.objects.for_tenant(request.tenant).select_related("user"),
                                   pk=membership_id)
    user = membership.user
    if membership.role not in _grantable(request):
        return _page(request, error="Only an owner can send an owner a password reset.", status=403)
    if not user.is_active:
        return _page(request, error=f"{user.email}'s account is disabled.", status=400)
    if not address_allowed(user.email):
        return _page(request, error=f"{user.email} has had several reset emails this hour; "
                                    "wait before sending another.", status=429)
    if not reset_email_send(user, sent_by=request.principal.user):
        return _page(request, error="Email is not set up for CloudPACS, so no reset can be sent: "
                                    "ask your provider to configure it (README, Email).", status=503)
    audit_record(tenant=request.tenant, actor=request.principal.actor(request),
                 action="member.password_reset_sent", obj_type="user", obj_id=user.pk,
                 detail={"email": user.email})
    messages.success(request, f"A link to set a new password was emailed to {user.email}.")
    return redirect("clinic:members", tenant_slug=request.tenant.slug)
