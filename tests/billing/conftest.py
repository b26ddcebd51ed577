"""Billing fixtures: localstripe (a fake Stripe API, PyPI) on 127.0.0.1 for the session,
and settings that point the app at it."""

import hashlib
import hmac
import json
import time
from datetime import UTC

import pytest

from tests.localstripe_server import LocalStripe

WEBHOOK_SECRET = "whsec_cloudpacs_test"


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory):
    server = LocalStripe(tmp_path_factory.mktemp("localstripe"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stripe_on(localstripe, settings):
    """Stripe configured (as in production), on localstripe; settles studies at once."""
    settings.STRIPE_SECRET_KEY = "sk_test_cloudpacs"
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_cloudpacs"
    settings.STRIPE_API_BASE = localstripe.url
    settings.STRIPE_JS_URL = f"{localstripe.url}/js.stripe.com/v3/"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_NETWORK_RETRIES = 0
    return localstripe


@pytest.fixture(autouse=True)
def default_price(db):
    """The default plan and price the migration makes (a transactional test's flush removes
    migration data, so it is made again where it is missing)."""
    from datetime import datetime

    from billing.models import Plan, PriceVersion

    plan, _ = Plan.objects.get_or_create(is_default=True, defaults={"name": "Standard"})
    if not plan.prices.exists():
        PriceVersion.objects.create(plan=plan, effective_from=datetime(2026, 1, 1, tzinfo=UTC),
                                    currency="usd", study_amount=500)
    return plan


@pytest.fixture(autouse=True)
def _fresh_refusals():
    from billing import grace

    grace._refusals.clear()
    yield
    grace._refusals.clear()


def signed(event: dict, secret: str = WEBHOOK_SECRET, at: int | None = None) -> tuple[bytes, str]:
    """A webhook body and its Stripe-Signature header, made as Stripe makes them (for
    events localstripe does not send, e.g. payment_method.attached)."""
    body = json.dumps(event).encode()
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={at},v1={mac}"


def event(kind: str, obj: dict, event_id: str | None = None) -> dict:
    import uuid

    return {"id": event_id or f"evt_{uuid.uuid4().hex}", "object": "event", "type": kind,
            "created": int(time.time()), "data": {"object": obj}, "api_version": "2017-08-15"}
