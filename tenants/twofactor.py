"""Two-factor rules: owners and admins must have verified a TOTP device this session."""

from django.shortcuts import redirect
from django.utils.http import urlencode
from django_otp import user_has_device

from tenants import roles


def needs_second_factor(request, membership):
    """A redirect to enrol or verify when this member's role demands 2FA; else None."""
    user = request.user
    if user.is_verified():
        return None
    has_device = user_has_device(user)  # a query per device class: asked once
    if has_device:
        return redirect("/account/2fa/verify/?" + urlencode({"next": request.get_full_path()}))
    if membership.role in roles.ROLES_REQUIRING_2FA:
        return redirect("/account/2fa/setup/?" + urlencode({"next": request.get_full_path()}))
    return None
