"""Two-factor authentication: enrol a TOTP app, verify after the password, backup codes."""

import io
import logging
from base64 import b32encode

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants import signin_audit
from tenants.forms import OtpCodeForm
from tenants.principal import client_ip
from tenants.views.auth import safe_next

logger = logging.getLogger("cloudpacs.auth")

BACKUP_CODE_COUNT = 10
TOTP_NAME = "Authenticator app"
BACKUP_NAME = "Backup codes"
THROTTLED = "Too many wrong codes: wait a little, then try again."


def _with_next(url: str, next_url: str) -> str:
    return url + "?" + urlencode({"next": next_url})


def qr_svg(data: str) -> str:
    """An inline SVG QR code (no image file, no third-party service sees the secret)."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    svg = buffer.getvalue().decode()
    return svg[svg.index("<svg"):]  # drop the XML declaration: it is not allowed inline


def backup_codes_issue(user) -> list[str]:
    """Replace the user's backup codes with fresh ones; each works once."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=BACKUP_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=c) for c in codes])
    return codes


@login_required
@never_cache
def setup(request: HttpRequest) -> HttpResponse:
    next_url = safe_next(request, reverse("account"))
    has_device = user_has_device(request.user)
    if has_device and not request.user.is_verified():
        # Someone with only the password must not be able to add their own authenticator.
        return redirect(_with_next(reverse("2fa_verify"), request.get_full_path()))
    device = (TOTPDevice.objects.filter(user=request.user, confirmed=False).order_by("-pk").first()
              or TOTPDevice.objects.create(user=request.user, name=TOTP_NAME, confirmed=False))
    form = OtpCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
            # django-otp's backoff refuses even the right code for a while after a wrong
            # one; say so, as the verify page does, rather than call a right code wrong.
            allowed, _ = device.verify_is_allowed()
            ok = allowed and device.verify_token(form.cleaned_data["code"])
            if ok:
                # A new app replaces any old one: one authenticator per person.
                TOTPDevice.objects.filter(user=request.user).exclude(pk=device.pk).delete()
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                codes = backup_codes_issue(request.user)
                signin_audit.signin_record(user=request.user, request=request,
                                           action=signin_audit.SECOND_FACTOR_ENROLLED,
                                           detail={"replaced": has_device})
        if ok:
            otp_login(request, device)
            logger.info("2fa enrolled user_id=%s ip=%s", request.user.pk, client_ip(request))
            return show_backup_codes(request, codes, next_url)
        form.add_error("code", THROTTLED if not allowed else
                       "That code is not right. Check the time on your phone and try the newest code.")
    secret = b32encode(device.bin_key).decode()
    return render(request, "tenants/2fa_setup.html", {
        "form": form, "qr_svg": qr_svg(device.config_url), "next": next_url, "replacing": has_device,
        "secret": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)),
    })


def show_backup_codes(request: HttpRequest, codes: list[str], next_url: str) -> HttpResponse:
    """Fresh backup codes appear in this one response only; the database keeps them for
    checking, but no page shows them again."""
    # Callers are @never_cache views, so no browser or proxy keeps a copy of this page.
    return render(request, "tenants/2fa_backup_codes.html", {"codes": codes, "next": next_url})


def _verify_code(user, code: str):
    """The device that accepts `code`: six digits go to the app, anything else to backup codes."""
    model = TOTPDevice if code.isdigit() and len(code) == 6 else StaticDevice
    with transaction.atomic():
        for device in model.objects.devices_for_user(user, confirmed=True).select_for_update():
            allowed, _ = device.verify_is_allowed()
            if not allowed:
                return None, THROTTLED
            if device.verify_token(code):
                return device, None
    return None, "That code is not right."


@login_required
@never_cache
def verify(request: HttpRequest) -> HttpResponse:
    next_url = safe_next(request, reverse("home"))
    if request.user.is_verified():
        return redirect(next_url)
    if not user_has_device(request.user):
        return redirect(_with_next(reverse("2fa_setup"), next_url))
    form = OtpCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device, error = _verify_code(request.user, form.cleaned_data["code"])
        ip = client_ip(request)
        if device is not None:
            otp_login(request, device)
            # A new session key once fully authenticated, like after the password.
            request.session.cycle_key()
            logger.info("2fa verified user_id=%s ip=%s device=%s", request.user.pk, ip,
                        type(device).__name__)
            method = "backup_code" if isinstance(device, StaticDevice) else "totp"
            signin_audit.signin_record(user=request.user, request=request,
                                       action=signin_audit.SECOND_FACTOR_VERIFIED,
                                       detail={"method": method})
            if isinstance(device, StaticDevice):
                left = device.token_set.count()
                messages.warning(request, f"You used a backup code; {left} left. "
                                          "Make new ones on your account page if you run low.")
            return redirect(next_url)
        logger.info("2fa failed user_id=%s ip=%s", request.user.pk, ip)
        # Throttled tries too: each comes from a session that already had the password.
        signin_audit.signin_record(user=request.user, request=request,
                                   action=signin_audit.LOGIN_FAILED,
                                   detail={"reason": "second_factor"})
        form.add_error("code", error)
    return render(request, "tenants/2fa_verify.html", {"form": form, "next": next_url})
