"""The clinic's card and billing contact: added with a SetupIntent in the browser (Stripe.js,
so the card number never touches our servers), recorded here once Stripe confirms it."""

import logging

import stripe
from django.db import transaction

from billing import grace, stripe_api
from billing.invoicing import pay_open_invoices
from billing.models import BillingAccount
from billing.stripe_push import customer_ensure
from tenants.audit import Actor, audit_record

log = logging.getLogger(__name__)

ADDRESS_FIELDS = ("line1", "line2", "city", "postal_code", "state", "country")


def _card_fields(payment_method) -> dict:
    card = payment_method.get("card") or {}
    month, year = card.get("exp_month"), card.get("exp_year")
    return {"payment_method_id": payment_method.get("id") or "", "card_brand": (card.get("brand") or "")[:30],
            "card_last4": (card.get("last4") or "")[:4],
            "card_exp": f"{int(month):02d}/{year}" if month and year else ""}


def card_on_file(account: BillingAccount, payment_method) -> None:
    """Record the card as the clinic's payment method."""
    for name, value in _card_fields(payment_method).items():
        setattr(account, name, value)
    account.save()


class CardProblem(Exception):
    """Shown to the admin as it is."""


def setup_intent_secret(tenant) -> str:
    """A new SetupIntent's client secret, for Stripe.js on the card page."""
    account = customer_ensure(tenant)
    return stripe_api.setup_intent_create(account.stripe_customer_id)["client_secret"]


def card_saved(*, tenant, setup_intent_id: str, actor: Actor) -> BillingAccount:
    """Stripe.js confirmed a SetupIntent: make its card the clinic's payment method (the
    one before it is removed), then retry any unpaid invoice."""
    account = customer_ensure(tenant)
    try:
        intent = stripe_api.setup_intent_get(setup_intent_id)
    except stripe.InvalidRequestError:
        raise CardProblem("That card setup is not known to Stripe; please try again.") from None
    if intent.get("customer") != account.stripe_customer_id:
        raise CardProblem("That card setup belongs to another customer.")
    if intent.get("status") != "succeeded" or not intent.get("payment_method"):
        raise CardProblem("The card was not confirmed; please try again.")
    pm_id = intent["payment_method"] if isinstance(intent["payment_method"], str) else intent["payment_method"]["id"]
    method = stripe_api.payment_method_get(pm_id)
    if not method.get("customer"):  # Stripe attaches it on confirmation; localstripe does not
        method = stripe_api.payment_method_attach(pm_id, account.stripe_customer_id)
    stripe_api.customer_update(account.stripe_customer_id, invoice_settings={"default_payment_method": pm_id})
    with transaction.atomic():
        locked = grace.account_for_update(tenant)
        previous = locked.payment_method_id
        card_on_file(locked, method)
        if locked.grace_reason == BillingAccount.NO_PAYMENT_METHOD:
            grace.grace_clear(locked, "card added")
        audit_record(tenant=tenant, actor=actor, action="billing.card_saved", obj_type="billing",
                     detail={"brand": locked.card_brand, "last4": locked.card_last4, "replaced": bool(previous)})
    if previous and previous != pm_id:
        try:
            stripe_api.payment_method_detach(previous)
        except stripe.StripeError:
            log.warning("could not detach the clinic's previous card", exc_info=True)
    pay_open_invoices(tenant)
    return grace.account_get(tenant)


def details_update(*, tenant, actor: Actor, email: str, address: dict) -> BillingAccount:
    """The billing email and address; sent to the Stripe customer when there is one."""
    with transaction.atomic():
        account = grace.account_for_update(tenant)
        before = {"email": account.billing_email, **{k: getattr(account, f"address_{k}") for k in ADDRESS_FIELDS}}
        account.billing_email = email
        for key in ADDRESS_FIELDS:
            setattr(account, f"address_{key}", address.get(key, ""))
        account.save()
        after = {"email": account.billing_email, **{k: getattr(account, f"address_{k}") for k in ADDRESS_FIELDS}}
        audit_record(tenant=tenant, actor=actor, action="billing.details_changed", obj_type="billing",
                     detail={"changed": sorted(k for k in after if after[k] != before[k])})
    if account.stripe_customer_id and stripe_api.enabled():
        params = {"email": email} if email else {}
        if address.get("line1"):
            params["address"] = {k: address[k] for k in ADDRESS_FIELDS if address.get(k)}
        if params:
            stripe_api.customer_update(account.stripe_customer_id, **params)
    return account
