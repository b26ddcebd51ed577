"""Prices, each clinic's billing account, its per-study charges, invoices and Stripe events.

Money is an integer in the currency's minor unit (cents), as Stripe counts it."""

import uuid
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from tenants.models import Tenant
from tenants.scoping import TenantOwned


class Plan(models.Model):
    """A named price list operators put clinics on; its prices are its PriceVersions."""

    name = models.CharField(max_length=100, unique=True)
    is_default = models.BooleanField(default=False, help_text="clinics without a plan of their own are on it")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True),
                                               name="billing_one_default_plan")]

    def __str__(self) -> str:
        return self.name


class PriceVersion(models.Model):
    """The price of a stored study from `effective_from` on, for a plan or (override) one
    clinic. Versions are never edited once in effect: a price change is a new version, so
    a charge is priced by the version in effect when its study was first stored."""

    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="prices")
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="price_overrides", verbose_name="clinic (override)")
    effective_from = models.DateTimeField(default=timezone.now)
    currency = models.CharField(max_length=3, default="usd", help_text="ISO 4217, lower case (usd, eur)")
    study_amount = models.PositiveIntegerField(help_text="price of one study, in the currency's minor unit")
    modality_amounts = models.JSONField(default=dict, blank=True,
                                        help_text='by modality, e.g. {"MR": 1500, "CT": 1200}; a study with '
                                                  "several modalities pays the highest")
    large_study_bytes = models.BigIntegerField(null=True, blank=True,
                                               help_text="a study above this size pays the large-study price")
    large_study_amount = models.PositiveIntegerField(null=True, blank=True)
    free_studies_per_month = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-effective_from", "-pk"]
        constraints = [models.CheckConstraint(condition=Q(plan__isnull=True) ^ Q(tenant__isnull=True),
                                              name="billing_price_plan_xor_clinic")]

    def __str__(self) -> str:
        owner = self.plan or f"clinic {self.tenant}"
        return f"{owner}: {self.study_amount} {self.currency} from {self.effective_from:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        if (self.plan_id is None) == (self.tenant_id is None):
            raise ValidationError("A price belongs to a plan or (as an override) to one clinic, not both.")
        if not (len(self.currency) == 3 and self.currency.isalpha()):
            raise ValidationError({"currency": "Three letters (ISO 4217), e.g. usd."})
        self.currency = self.currency.lower()
        amounts = self.modality_amounts or {}
        if not isinstance(amounts, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
                for k, v in amounts.items()):
            raise ValidationError({"modality_amounts": 'A JSON object of modality → amount, e.g. {"MR": 1500}.'})
        self.modality_amounts = {k.strip().upper(): v for k, v in amounts.items()}
        if (self.large_study_bytes is None) != (self.large_study_amount is None):
            raise ValidationError("Give both the large-study size and its price, or neither.")
        if self._state.adding and self.effective_from < timezone.now() - timedelta(minutes=5):
            # Charges recorded since then would be repriced: a new price starts now or later.
            raise ValidationError({"effective_from": "A new price starts now or later, not in the past."})

    def amount_for(self, *, modalities: list[str], size_bytes: int) -> int:
        """The price of one study of these modalities and this size: the highest that
        applies (each modality's own price or the study price, and the large-study price
        above its size), so a larger or richer study never costs less."""
        table = self.modality_amounts or {}
        amounts = [table.get(m, self.study_amount) for m in modalities] or [self.study_amount]
        if self.large_study_bytes is not None and size_bytes > self.large_study_bytes:
            amounts.append(self.large_study_amount)
        return max(amounts)


class BillingAccount(TenantOwned):
    """One per clinic: its plan, Stripe customer, card summary, billing contact and grace."""

    PAYMENT_FAILED = "payment_failed"
    NO_PAYMENT_METHOD = "no_payment_method"
    GRACE_REASONS = [(PAYMENT_FAILED, "a payment failed"), (NO_PAYMENT_METHOD, "no payment method")]

    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT,
                             help_text="empty: the default plan")
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    billing_email = models.EmailField(blank=True)
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    address_city = models.CharField(max_length=100, blank=True)
    address_postal_code = models.CharField(max_length=20, blank=True)
    address_state = models.CharField(max_length=100, blank=True)
    address_country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2, e.g. US")
    # Bumped when the Stripe customer is deleted: the next one is a new customer (its
    # idempotency key differs), and charges go to it under keys of their own.
    customer_generation = models.PositiveIntegerField(default=0)
    payment_method_id = models.CharField(max_length=255, blank=True)
    card_brand = models.CharField(max_length=30, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    card_exp = models.CharField(max_length=7, blank=True, help_text="MM/YYYY")
    # Grace: set when a payment fails (or a charge is due with no card); uploads are refused
    # after `grace_ends_at` until it is cleared. Reading and sharing never stop.
    grace_reason = models.CharField(max_length=32, blank=True, choices=GRACE_REASONS)
    grace_started_at = models.DateTimeField(null=True, blank=True)
    grace_ends_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant"], name="billing_one_account_per_clinic")]

    def __str__(self) -> str:
        return f"Billing account of {self.tenant}"

    @property
    def in_grace(self) -> bool:
        return self.grace_ends_at is not None

    @property
    def has_card(self) -> bool:
        return bool(self.payment_method_id)


class Charge(TenantOwned):
    """The one charge for one study of a clinic: recorded in the ingest transaction that
    created the study row, priced once the study has settled, then sent to Stripe as an
    invoice item whose idempotency key is the charge's uuid."""

    RECORDED = "recorded"  # in the index, not yet priced
    PRICED = "priced"  # amount fixed; not sent (Stripe off, or nothing to send yet)
    FREE = "free"  # within the month's free allowance, or priced at zero: never sent
    SENT = "sent"  # an invoice item in Stripe
    INVOICED = "invoiced"  # on a Stripe invoice
    CREDITED = "credited"  # an operator credited it back
    STATES = [(s, s) for s in (RECORDED, PRICED, FREE, SENT, INVOICED, CREDITED)]

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # SET_NULL: deleting a study (two-person deletion) keeps its charge; no automatic refund.
    study = models.ForeignKey("archive.Study", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="charges")
    study_instance_uid = models.CharField(max_length=64)
    recorded_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=16, choices=STATES, default=RECORDED)
    price = models.ForeignKey(PriceVersion, null=True, blank=True, on_delete=models.PROTECT)
    amount = models.PositiveIntegerField(null=True, blank=True, help_text="minor unit; fixed when priced")
    within_allowance = models.BooleanField(default=False, help_text="free as one of the month's free studies")
    currency = models.CharField(max_length=3, blank=True)
    modalities = models.CharField(max_length=100, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    priced_at = models.DateTimeField(null=True, blank=True)
    stripe_invoice_item_id = models.CharField(max_length=255, blank=True)
    stripe_invoice_id = models.CharField(max_length=255, blank=True)
    # When the first push to Stripe began (committed before the call): a push after Stripe's
    # idempotency window first looks for an item an earlier attempt may have made.
    first_push_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    credited_at = models.DateTimeField(null=True, blank=True)
    credit_reason = models.CharField(max_length=500, blank=True)
    stripe_credit_item_id = models.CharField(max_length=255, blank=True)

    class Meta(TenantOwned.Meta):
        ordering = ["-recorded_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["tenant", "study_instance_uid"],
                                               name="billing_one_charge_per_study")]
        indexes = [models.Index(fields=["tenant", "recorded_at"], name="billing_charge_month_idx"),
                   models.Index(fields=["state"], name="billing_charge_state_idx")]

    def __str__(self) -> str:
        return f"Charge {self.uuid} ({self.state})"

    @property
    def modality_list(self) -> list[str]:
        return [m for m in self.modalities.split("\\") if m]

    def idempotency_key(self, customer_id: str) -> str:
        # Per customer: after a deleted customer the charge goes to the next one as new.
        return f"cloudpacs-charge-{self.uuid}-{customer_id}"


class Invoice(TenantOwned):
    """A Stripe invoice of a clinic, as last seen (monthly task or webhook)."""

    stripe_id = models.CharField(max_length=255, unique=True)
    number = models.CharField(max_length=100, blank=True)
    period = models.CharField(max_length=7, blank=True, help_text="YYYY-MM of the charges on it")
    status = models.CharField(max_length=30, blank=True)
    amount_due = models.BigIntegerField(default=0)
    amount_paid = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True)
    hosted_invoice_url = models.URLField(max_length=1000, blank=True)
    invoice_pdf = models.URLField(max_length=1000, blank=True)
    last_payment_error = models.CharField(max_length=500, blank=True)
    # The `created` of the newest webhook event applied: Stripe may deliver events late and
    # out of order, and an older one must not undo a newer state.
    last_event_created = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwned.Meta):
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Invoice {self.number or self.stripe_id}"


class StripeEvent(models.Model):
    """Every webhook event, stored once (the id is unique) before it is acted on."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    body = models.JSONField()
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.SET_NULL)
    received_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-received_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
