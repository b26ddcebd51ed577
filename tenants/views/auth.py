"""Log in by email and password, with per-account lockout and a per-IP limit."""

import logging

from django.contrib.auth import authenticate, login
from django.contrib.auth import logout as auth_logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_otp import user_has_device

from tenants import signin_audit, throttle
from tenants.forms import LoginForm
from tenants.models import User
from tenants.principal import client_ip

logger = logging.getLogger("cloudpacs.auth")

LOCKED_MESSAGE = ("Too many failed attempts: this account is locked for {minutes} more minute(s). "
                  "Try again later, or ask your clinic admin for help.")
IP_BLOCKED_MESSAGE = ("Too many failed log-in attempts from your network. Wait a few minutes and "
                      "try again.")
WRONG_MESSAGE = "The email address or password is not right."


def safe_next(request: HttpRequest, default: str = "/") -> str:
    """The `next` parameter if it points into this site, else `default`."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = safe_next(request, reverse("home"))
    if request.user.is_authenticated and request.method == "GET":
        return redirect(next_url)
    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST":
        ip = client_ip(request)
        if throttle.ip_is_blocked(ip):
            # Checked before the password, so a blocked client learns nothing more.
            logger.warning("login refused: ip=%s is over the failure limit", ip)
            form.add_error(None, IP_BLOCKED_MESSAGE)
            status = 429
        elif form.is_valid():
            user = _attempt(request, form, ip)
            if user is not None:
                return _after_password(request, user, next_url)
            status = 429 if throttle.ip_is_blocked(ip) else 200
    idle = request.GET.get("idle", "")
    return render(request, "registration/login.html",
                  {"form": form, "next": next_url, "idle_minutes": idle if idle.isdigit() else None},
                  status=status)


def _attempt(request: HttpRequest, form: LoginForm, ip: str | None) -> User | None:
    """Check the password unless the account is locked; records the outcome."""
    email = form.cleaned_data["email"].strip().lower()
    user = User.objects.filter(email__iexact=email).first()
    lock = throttle.account_lock(user=user, email=email)
    if lock is not None:
        # Locked: the password is not even checked, so the answer cannot leak it. Not in the
        # audit log either: these cost nothing and count against no limit, so anyone could
        # fill a clinic's log with them; the lockout itself is recorded.
        logger.info("login refused: account locked user_id=%s ip=%s", user.pk if user else "-", ip)
        form.add_error(None, LOCKED_MESSAGE.format(minutes=lock.minutes_left))
        return None
    authenticated = authenticate(request, username=email, password=form.cleaned_data["password"])
    if authenticated is None:
        # authenticate() sent user_login_failed, which recorded the failure.
        lock = throttle.login_failed(user=user, email=email, ip=ip)
        if lock is not None and user is not None:
            signin_audit.signin_record(user=user, request=request, action=signin_audit.LOCKOUT,
                                       detail={"until": lock.until.isoformat(),
                                               "minutes": lock.minutes_left})
        message = LOCKED_MESSAGE.format(minutes=lock.minutes_left) if lock else WRONG_MESSAGE
        form.add_error(None, message)
        return None
    throttle.login_succeeded(user=authenticated)
    logger.info("login ok user_id=%s ip=%s", authenticated.pk, ip)
    return authenticated


def _after_password(request: HttpRequest, user: User, next_url: str) -> HttpResponse:
    login(request, user)
    if user_has_device(user):
        # Anyone with a device gives the second factor now, whatever their role.
        return redirect(reverse("2fa_verify") + "?" + urlencode({"next": next_url}))
    return redirect(next_url)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    auth_logout(request)
    return redirect("login")
