"""A person's own account: two-factor status, backup codes, password."""

import logging

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import devices_for_user, user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

from tenants import roles, signin_audit
from tenants.principal import client_ip
from tenants.views.twofactor import backup_codes_issue, show_backup_codes

logger = logging.getLogger("cloudpacs.auth")


def roles_requiring_2fa(user) -> list:
    """The memberships that oblige this person to keep two-factor authentication on (in
    any clinic, so unscoped)."""
    return list(user.memberships(manager="unscoped").select_related("tenant")
                .filter(role__in=roles.ROLES_REQUIRING_2FA, tenant__status="active"))


@sensitive_post_parameters()
@login_required
@never_cache
def account(request: HttpRequest) -> HttpResponse:
    user = request.user
    has_device = user_has_device(user)
    if has_device and not user.is_verified():
        # Changing security settings needs the second factor, not just the password.
        return redirect(reverse("2fa_verify") + "?" + urlencode({"next": request.path}))
    action = request.POST.get("action") if request.method == "POST" else None
    password_form = PasswordChangeForm(user, request.POST if action == "password" else None)
    status = 200
    if action == "password":
        if password_form.is_valid():
            with transaction.atomic():  # changed and audited, or neither
                password_form.save()
                signin_audit.signin_record(user=user, request=request,
                                           action=signin_audit.PASSWORD_CHANGED)
            update_session_auth_hash(request, user)
            logger.info("password changed user_id=%s ip=%s", user.pk, client_ip(request))
            messages.success(request, "Your password was changed.")
            return redirect("account")
        status = 400
    elif action == "backup_codes" and has_device:
        with transaction.atomic():
            codes = backup_codes_issue(user)
            signin_audit.signin_record(user=user, request=request,
                                       action=signin_audit.BACKUP_CODES_RENEWED)
        logger.info("2fa backup codes renewed user_id=%s", user.pk)
        return show_backup_codes(request, codes, reverse("account"))
    elif action == "disable_2fa" and has_device:
        response = _disable_2fa(request)
        if response is not None:
            return response
        status = 400
    elif action is not None:
        status = 400
    binding = roles_requiring_2fa(user)
    return render(request, "tenants/account.html", {
        "password_form": password_form,
        "has_device": has_device,
        "backup_codes_left": StaticToken.objects.filter(device__user=user).count(),
        "binding_memberships": binding,
    }, status=status)


def _disable_2fa(request: HttpRequest) -> HttpResponse | None:
    user = request.user
    binding = roles_requiring_2fa(user)
    if binding:
        names = ", ".join(m.tenant.name for m in binding)
        messages.error(request, f"Two-factor authentication must stay on while you are an owner or "
                                f"admin ({names}).")
        return None
    if not user.check_password(request.POST.get("password", "")):
        messages.error(request, "To turn off two-factor authentication, enter your password.")
        return None
    with transaction.atomic():  # removed and audited, or neither
        for device in list(devices_for_user(user, confirmed=None)):
            device.delete()
        StaticDevice.objects.filter(user=user).delete()
        signin_audit.signin_record(user=user, request=request,
                                   action=signin_audit.SECOND_FACTOR_REMOVED)
    logger.info("2fa disabled user_id=%s ip=%s", user.pk, client_ip(request))
    messages.success(request, "Two-factor authentication is off.")
    return redirect("account")
