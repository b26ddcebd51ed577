"""Accepting an invitation link: an existing user joins, or a new person signs up and joins."""

from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import user_has_device

from tenants import roles
from tenants.audit import Actor, AuditEvent
from tenants.forms import SignupForm
from tenants.models import Invitation, Membership, User
from tenants.principal import client_ip
from tenants.services import (
    InvitationUnusable,
    invitation_accept,
    invitation_accept_new_user,
    invitation_unusable_reason,
)


def request_actor(request: HttpRequest, user: User | None = None) -> Actor:
    agent = request.META.get("HTTP_USER_AGENT", "")
    if user is None:
        return Actor(AuditEvent.ANONYMOUS, "", "", client_ip(request), agent)
    return Actor(AuditEvent.USER, str(user.pk), user.email, client_ip(request), agent)


def _unusable(request: HttpRequest, reason: str, invitation: Invitation | None = None) -> HttpResponse:
    status = {"not_found": 404, "wrong_email": 403, "already_member": 409,
              "account_exists": 409}.get(reason, 410)
    return render(request, "tenants/invitation_error.html",
                  {"message": InvitationUnusable.MESSAGES[reason], "reason": reason,
                   "invitation": invitation}, status=status)


@sensitive_post_parameters("password1", "password2")
@never_cache
def accept(request: HttpRequest, token: str) -> HttpResponse:
    # The token sits in the URL (it came by email); it is single use and stored hashed.
    invitation = Invitation.find(token)
    reason = invitation_unusable_reason(invitation)
    if reason is not None:
        return _unusable(request, reason, invitation)
    context = {"invitation": invitation, "role_label": dict(roles.ROLE_CHOICES)[invitation.role]}
    if request.user.is_authenticated:
        return _accept_as_user(request, invitation, context)
    if User.objects.filter(email__iexact=invitation.email).exists():
        login_url = reverse("login") + "?" + urlencode({"next": request.path})
        return render(request, "tenants/invitation_login.html", {**context, "login_url": login_url})
    form = SignupForm(request.POST or None, email=invitation.email)
    if request.method == "POST" and form.is_valid():
        try:
            membership = invitation_accept_new_user(
                invitation=invitation, full_name=form.cleaned_data["full_name"],
                password=form.cleaned_data["password1"], actor=request_actor(request))
        except InvitationUnusable as exc:
            return _unusable(request, exc.reason, invitation)
        login(request, membership.user, backend="tenants.auth_backend.UserBackend")
        return _joined(request, membership)
    return render(request, "tenants/invitation_signup.html", {**context, "form": form},
                  status=400 if request.method == "POST" else 200)


def _accept_as_user(request: HttpRequest, invitation: Invitation, context: dict) -> HttpResponse:
    user = request.user
    if user_has_device(user) and not user.is_verified():
        # Joining a clinic is a security change: with a device, the password alone is not enough.
        return redirect(reverse("2fa_verify") + "?" + urlencode({"next": request.path}))
    if user.email.lower() != invitation.email.lower():
        return _unusable(request, "wrong_email", invitation)
    if Membership.objects.for_tenant(invitation.tenant).filter(user=user).exists():
        return _unusable(request, "already_member", invitation)
    if request.method == "POST":
        try:
            membership = invitation_accept(invitation=invitation, user=user,
                                           actor=request_actor(request, user))
        except InvitationUnusable as exc:
            return _unusable(request, exc.reason, invitation)
        return _joined(request, membership)
    return render(request, "tenants/invitation_accept.html", context)


def _joined(request: HttpRequest, membership: Membership) -> HttpResponse:
    messages.success(request, f"Welcome to {membership.tenant.name}.")
    return redirect("clinic:dashboard", tenant_slug=membership.tenant.slug)
