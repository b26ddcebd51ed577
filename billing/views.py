"""The clinic's billing pages (billing.manage), and Stripe's webhook endpoint."""

import json
import logging
from datetime import datetime
from urllib.parse import urlsplit

import stripe
from csp.decorators import csp_update
from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from billing import grace, stripe_api
from billing.cards import (
    ADDRESS_FIELDS,
    CardProblem,
    card_saved,
    details_update,
    setup_intent_secret,
)
from billing.charges import month_bounds, period_summary, upcoming_total
from billing.models import Charge, Invoice
from billing.prices import money
from billing.webhooks import event_receive
from cloudpacs.csv_export import csv_lines
from tenants.decorators import require_perm

log = logging.getLogger(__name__)

WEBHOOK_MAX_BYTES = 512 * 1024  # Stripe's events are a few kB; anything larger is not one


class DetailsForm(forms.Form):
    billing_email = forms.EmailField(required=False, label="Billing email")
    line1 = forms.CharField(max_length=200, required=False, label="Address")
    line2 = forms.CharField(max_length=200, required=False, label="Address (line 2)")
    city = forms.CharField(max_length=100, required=False)
    postal_code = forms.CharField(max_length=20, required=False, label="Postal code")
    state = forms.CharField(max_length=100, required=False, label="State or region")
    country = forms.RegexField(regex=r"^[A-Za-z]{2}$", required=False, label="Country (two letters, e.g. US)")


STATE_SHOWN = {Charge.RECORDED: "still arriving", Charge.FREE: "free", Charge.SENT: "on the next invoice",
               Charge.INVOICED: "invoiced", Charge.CREDITED: "credited"}


def _page(request, form: DetailsForm | None = None, status: int = 200):
    tenant = request.tenant
    account = grace.account_get(tenant)
    summary = period_summary(tenant=tenant)
    stripe_on = stripe_api.enabled()
    month = list(Charge.objects.for_tenant(tenant).filter(recorded_at__gte=summary["start"],
                                                          recorded_at__lt=summary["end"]).order_by("-recorded_at")[:200])
    for charge in month:
        charge.shown_amount = "" if charge.amount is None else money(charge.amount, charge.currency)
        charge.shown_state = (("sending" if stripe_on else "not sent") if charge.state == Charge.PRICED
                              else STATE_SHOWN[charge.state])
    invoices = list(Invoice.objects.for_tenant(tenant)[:24])
    for invoice in invoices:
        invoice.shown_amount = money(invoice.amount_due, invoice.currency)
    form = form or DetailsForm(initial={"billing_email": account.billing_email,
                                        **{k: getattr(account, f"address_{k}") for k in ADDRESS_FIELDS}})
    return render(request, "billing/billing.html", {
        "account": account, "summary": summary, "charges": month, "stripe_on": stripe_on,
        "totals": [money(v, k) for k, v in summary["totals"].items()],
        "upcoming": [money(v, k) for k, v in upcoming_total(tenant=tenant).items()],
        "invoices": invoices, "form": form}, status=status)


@require_GET
@require_perm("billing.manage")
def billing_page(request):
    return _page(request)


@require_POST
@require_perm("billing.manage")
def billing_details(request):
    form = DetailsForm(request.POST)
    if not form.is_valid():  # the page again, with what was typed and what is wrong beside it
        return _page(request, form, status=400)
    data = form.cleaned_data
    address = {k: (data.get(k) or "").strip() for k in ADDRESS_FIELDS}
    address["country"] = address["country"].upper()
    try:
        details_update(tenant=request.tenant, actor=request.principal.actor(request),
                       email=data["billing_email"], address=address)
    except stripe.StripeError:
        log.warning("billing details saved here but not sent to Stripe", exc_info=True)
        messages.warning(request, "Billing details saved here, but Stripe could not be reached: save them "
                                  "again later so that Stripe's invoices carry them.")
        return redirect("billing:page", tenant_slug=request.tenant.slug)
    messages.success(request, "Billing details saved.")
    return redirect("billing:page", tenant_slug=request.tenant.slug)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _card_csp() -> dict:
    """Stripe.js on the card page only: its script, its API, and (real Stripe) its frames."""
    js = _origin(settings.STRIPE_JS_URL)
    api = _origin(settings.STRIPE_API_BASE) if settings.STRIPE_API_BASE else "https://api.stripe.com"
    return {"script-src": [js], "connect-src": [api, js], "frame-src": [js, "https://hooks.stripe.com"]}


@require_GET
@require_perm("billing.manage")
def card_page(request):
    if not stripe_api.enabled():
        messages.info(request, "Card payments are not switched on for this server yet; your operator "
                               "turns them on. Until then nothing is charged to a card.")
        return redirect("billing:page", tenant_slug=request.tenant.slug)
    try:
        secret = setup_intent_secret(request.tenant)
    except stripe.StripeError:
        log.warning("could not start a card setup", exc_info=True)
        messages.error(request, "Stripe could not be reached; please try again in a minute.")
        return redirect("billing:page", tenant_slug=request.tenant.slug)
    response = render(request, "billing/card.html", {
        "client_secret": secret, "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "stripe_js": settings.STRIPE_JS_URL, "account": grace.account_get(request.tenant)})
    return csp_update(_card_csp())(lambda r: response)(request)


@require_POST
@require_perm("billing.manage")
def card_saved_view(request):
    setup_intent_id = request.POST.get("setup_intent", "")
    if not setup_intent_id.startswith("seti_") or len(setup_intent_id) > 255:
        messages.error(request, "The card was not saved: the card setup is missing.")
        return redirect("billing:page", tenant_slug=request.tenant.slug)
    try:
        account = card_saved(tenant=request.tenant, setup_intent_id=setup_intent_id,
                             actor=request.principal.actor(request))
    except CardProblem as exc:
        messages.error(request, f"The card was not saved: {exc}")
    except stripe.StripeError:
        log.warning("saving a card failed", exc_info=True)
        messages.error(request, "Stripe could not be reached; the card was not saved. Please try again.")
    else:
        messages.success(request, f"Card {account.card_brand} ending {account.card_last4} saved.")
    return redirect("billing:page", tenant_slug=request.tenant.slug)


CSV_COLUMNS = ["recorded_at", "study_instance_uid", "modalities", "size_bytes", "state", "amount", "currency",
               "stripe_invoice_item_id", "stripe_invoice_id", "reference"]


@require_GET
@require_perm("billing.manage")
def charges_csv(request):
    """Every charge of the clinic (or of one month: ?month=YYYY-MM); UIDs, never patient data."""
    charges = Charge.objects.for_tenant(request.tenant).order_by("recorded_at", "pk")
    month = request.GET.get("month", "")
    if month:
        try:
            start = timezone.make_aware(datetime.strptime(month, "%Y-%m"))
            if not 2000 <= start.year <= 2999:
                raise ValueError(month)
        except ValueError:
            return HttpResponse("month must be YYYY-MM (2000 to 2999)", status=400, content_type="text/plain")
        start, end = month_bounds(start)
        charges = charges.filter(recorded_at__gte=start, recorded_at__lt=end)

    rows = ((c.recorded_at.isoformat(), c.study_instance_uid, c.modalities.replace("\\", " "), c.size_bytes,
             c.state, c.amount, c.currency, c.stripe_invoice_item_id, c.stripe_invoice_id, c.uuid)
            for c in charges.iterator(chunk_size=2000))
    response = StreamingHttpResponse(csv_lines(CSV_COLUMNS, rows), content_type="text/csv; charset=utf-8")
    name = f"charges-{request.tenant.slug}{'-' + month if month else ''}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """Stripe's events. A bad, missing or expired signature: 400 and nothing changes."""
    if not settings.STRIPE_WEBHOOK_SECRET:
        return JsonResponse({"error": "webhooks are not configured on this server"}, status=400)
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > WEBHOOK_MAX_BYTES:
        return JsonResponse({"error": "not a Stripe event"}, status=400)
    payload = request.body
    try:
        stripe_api.webhook_event(payload, request.META.get("HTTP_STRIPE_SIGNATURE"))
        body = json.loads(payload)
        body["id"], body["type"], body["data"]["object"]  # noqa: B018 - what every event has
    except (stripe.SignatureVerificationError, ValueError, KeyError, TypeError):
        return JsonResponse({"error": "signature verification failed, or not a Stripe event"}, status=400)
    return JsonResponse({"received": True, "outcome": event_receive(body)})
