"""The one place that talks to Stripe: a client built from settings, and the calls we make.

Nothing here sends PHI: invoice items carry the charge's uuid, the modality and the date,
never a patient's or a study's identifier. Every call that creates something has an
idempotency key, so a retry after a crash or a timeout cannot create it twice."""

import stripe
from django.conf import settings


def _plain(obj) -> dict:
    """Stripe's objects as plain dicts (stripe-python's are not dicts): read with [] and get."""
    return obj.to_dict() if hasattr(obj, "to_dict") else obj


class StripeOff(RuntimeError):
    """No Stripe key is configured (the embedded default): nothing is sent."""


def enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def client() -> stripe.StripeClient:
    if not enabled():
        raise StripeOff("Stripe is not configured (STRIPE_SECRET_KEY)")
    base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, base_addresses=base,
                               max_network_retries=settings.STRIPE_NETWORK_RETRIES)


def customer_create(*, tenant, email: str, generation: int) -> str:
    params = {"name": tenant.name, "metadata": {"clinic": str(tenant.uuid)}}
    if email:
        params["email"] = email
    customer = client().v1.customers.create(
        params=params, options={"idempotency_key": f"cloudpacs-customer-{tenant.uuid}-{generation}"})
    return customer["id"]


def customer_update(customer_id: str, **params) -> None:
    client().v1.customers.update(customer_id, params=params)


def invoice_item_create(*, customer_id: str, amount: int, currency: str, description: str,
                        metadata: dict, idempotency_key: str) -> str:
    item = client().v1.invoice_items.create(
        params={"customer": customer_id, "amount": amount, "currency": currency, "description": description,
                "metadata": metadata},
        options={"idempotency_key": idempotency_key})
    return item["id"]


def pending_items(customer_id: str) -> list:
    """The customer's invoice items not yet on an invoice."""
    return [_plain(i) for i in client().v1.invoice_items.list(params={"customer": customer_id, "limit": 100})
            .auto_paging_iter()]


def payment_method_attach(payment_method_id: str, customer_id: str):
    return _plain(client().v1.payment_methods.attach(payment_method_id, params={"customer": customer_id}))


def payment_method_detach(payment_method_id: str):
    return _plain(client().v1.payment_methods.detach(payment_method_id))


def setup_intent_create(customer_id: str):
    return _plain(client().v1.setup_intents.create(params={"customer": customer_id, "payment_method_types": ["card"],
                                                           "usage": "off_session"}))


def setup_intent_get(setup_intent_id: str):
    return _plain(client().v1.setup_intents.retrieve(setup_intent_id))


def payment_method_get(payment_method_id: str):
    return _plain(client().v1.payment_methods.retrieve(payment_method_id))


def invoice_create(*, customer_id: str, description: str, idempotency_key: str):
    return _plain(client().v1.invoices.create(
        params={"customer": customer_id, "description": description,
                # Stripe leaves pending invoice items off a new invoice unless asked.
                "pending_invoice_items_behavior": "include"},
        options={"idempotency_key": idempotency_key}))


def invoice_item_ids(invoice_id: str) -> set[str]:
    """The invoice items on an invoice, every page of its lines. Where a line names its
    item moved between API versions: `parent.invoice_item_details` now, `invoice_item` before."""
    found = set()
    for line in client().v1.invoices.line_items.list(invoice_id, params={"limit": 100}).auto_paging_iter():
        line = _plain(line)
        parent = (line.get("parent") or {}).get("invoice_item_details") or {}
        item = parent.get("invoice_item") or line.get("invoice_item")
        if item:
            found.add(item)
    return found


def invoices_of(customer_id: str) -> list:
    return [_plain(i) for i in client().v1.invoices.list(params={"customer": customer_id, "limit": 100})
            .auto_paging_iter()]


def invoice_finalize(invoice_id: str):
    return _plain(client().v1.invoices.finalize_invoice(invoice_id))


def invoice_pay(invoice_id: str):
    return _plain(client().v1.invoices.pay(invoice_id))


def invoice_get(invoice_id: str):
    return _plain(client().v1.invoices.retrieve(invoice_id))


def webhook_event(payload: bytes, signature: str | None):
    """The verified event, or stripe.SignatureVerificationError / ValueError."""
    return stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET,
                                          tolerance=settings.STRIPE_WEBHOOK_TOLERANCE)
