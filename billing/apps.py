"""Billing: prices, one charge per stored study, Stripe, webhooks and the billing pages."""

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Registers the `bill` outbox work, and billing's part of ingest (the charge of a new
        # study, and refusing uploads after an unpaid grace period).
        from billing import work  # noqa: F401
