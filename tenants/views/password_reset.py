"""Forgot password: ask by email, open the link, set a new password (tenants/password_reset.py
says how nobody learns which addresses have accounts)."""

import logging

from django import forms
from django.contrib.auth import views as auth_views
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from tenants import signin_audit, throttle
from tenants.password_reset import ip_allowed, reset_request_queue
from tenants.principal import client_ip

logger = logging.getLogger("cloudpacs.auth")

TOO_MANY = "Too many password reset requests from your network. Wait an hour and try again."


class ResetRequestForm(forms.Form):
    email = forms.EmailField(max_length=254, label="Email", widget=forms.EmailInput(
        attrs={"autocomplete": "email", "autofocus": True}))


@csrf_protect
@never_cache
def reset_request(request: HttpRequest) -> HttpResponse:
    form = ResetRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        ip = client_ip(request)
        if not ip_allowed(ip):
            logger.warning("password reset refused: ip=%s is over the limit", ip)
            form.add_error(None, TOO_MANY)
            return render(request, "registration/password_reset_form.html", {"form": form}, status=429)
        # The same answer, at once, whether or not the address has an account: the rest
        # is done after it (tenants/password_reset.py).
        reset_request_queue(form.cleaned_data["email"], request)
        return redirect("password_reset_done")
    return render(request, "registration/password_reset_form.html", {"form": form})


def reset_requested(request: HttpRequest) -> HttpResponse:
    return render(request, "registration/password_reset_done.html")


class ResetConfirm(auth_views.PasswordResetConfirmView):
    """Django's view (it moves the token from the URL into the session before showing the
    form, so the token leaks through no Referer), with the refusal and the reset audited."""

    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("password_reset_complete")

    def dispatch(self, *args, **kwargs):
        response = super().dispatch(*args, **kwargs)
        # A good link's first visit redirects (to the URL without the token): not a refusal.
        if not self.validlink and response.status_code == 200:
            return self._refused(response)
        return response

    def _refused(self, response):
        ip = client_ip(self.request)
        if not ip_allowed(ip):  # refused links count against the address's reset limit
            return render(self.request, "registration/password_reset_confirm.html",
                          {"validlink": False, "too_many": True}, status=429)
        # Only a link naming an account is worth its clinics' audit logs (guessing costs a
        # request each, and the per-address limit above bounds them).
        if self.user is not None:
            signin_audit.signin_record(user=self.user, request=self.request,
                                       action=signin_audit.PASSWORD_RESET_REFUSED)
        logger.info("password reset link refused user_id=%s ip=%s", getattr(self.user, "pk", "-"), ip)
        response.status_code = 400 if response.status_code == 200 else response.status_code
        return response

    def form_valid(self, form):
        with transaction.atomic():  # set and audited, or neither
            response = super().form_valid(form)
            signin_audit.signin_record(user=self.user, request=self.request,
                                       action=signin_audit.PASSWORD_RESET)
        # Whoever holds the mailbox has proven it: the failed-login lock goes with the old password.
        throttle.login_succeeded(user=self.user)
        logger.info("password reset done user_id=%s ip=%s", self.user.pk, client_ip(self.request))
        return response


reset_confirm = ResetConfirm.as_view()


def reset_complete(request: HttpRequest) -> HttpResponse:
    return render(request, "registration/password_reset_complete.html")
