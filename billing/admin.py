"""Operators' billing: plans and prices, clinic accounts, charges (with credits), invoices,
Stripe's events, and an overview of revenue, failed payments and clinics in grace."""

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMonth
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from billing.credits import charge_credit
from billing.grace import account_for_update, grace_clear
from billing.models import BillingAccount, Charge, Invoice, Plan, PriceVersion, StripeEvent
from tenants.admin_scoping import AllClinicsAdmin
from tenants.audit import Actor, AuditEvent


class PriceInline(admin.TabularInline):
    model = PriceVersion
    extra = 0
    fields = ["effective_from", "currency", "study_amount", "modality_amounts", "large_study_bytes",
              "large_study_amount", "free_studies_per_month"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # a new price is added on its own page, with its date


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "is_default"]
    inlines = [PriceInline]


@admin.register(PriceVersion)
class PriceVersionAdmin(admin.ModelAdmin):
    """Prices are versions: one in effect is never changed or deleted (charges were priced
    by it); a price change is a new version with its own `effective_from`."""

    list_display = ["__str__", "plan", "tenant", "effective_from", "currency", "study_amount",
                    "free_studies_per_month"]
    list_filter = ["plan", "currency"]

    def _in_effect(self, obj) -> bool:
        return obj is not None and obj.pk is not None and obj.effective_from <= timezone.now()

    def get_readonly_fields(self, request, obj=None):
        if self._in_effect(obj):
            return [f.name for f in self.model._meta.fields]
        return ["created_at"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return not self._in_effect(obj) and super().has_delete_permission(request, obj)


@admin.register(BillingAccount)
class BillingAccountAdmin(AllClinicsAdmin):
    list_display = ["tenant", "plan", "stripe_customer_id", "card_last4", "grace_reason", "grace_ends_at"]
    list_filter = ["plan", "grace_reason"]
    fields = ["tenant", "plan", "billing_email", "stripe_customer_id", "card_brand", "card_last4", "card_exp",
              "grace_reason", "grace_started_at", "grace_ends_at"]
    readonly_fields = ["tenant", "stripe_customer_id", "card_brand", "card_last4", "card_exp", "grace_reason",
                       "grace_started_at", "grace_ends_at"]

    actions = ["end_grace"]

    def has_add_permission(self, request) -> bool:
        return False  # made with the clinic's first charge or billing page

    @admin.action(description="End the grace period (uploads go on; audited in the clinic's log)")
    def end_grace(self, request, queryset):
        ended = 0
        for account in queryset.select_related("tenant"):
            with transaction.atomic():
                locked = account_for_update(account.tenant)
                if grace_clear(locked, f"ended by operator {request.user.email}"):
                    ended += 1
        messages.success(request, f"Grace ended for {ended} clinic(s).")


def _operator(request) -> Actor:
    return Actor(AuditEvent.USER, str(request.user.pk), f"operator {request.user.email}",
                 request.META.get("REMOTE_ADDR"), "")


@admin.register(Charge)
class ChargeAdmin(AllClinicsAdmin):
    # No StudyInstanceUID here: with the clinic beside it, it says who was imaged where.
    list_display = ["recorded_at", "tenant", "uuid", "modalities", "amount", "currency", "state",
                    "stripe_invoice_item_id"]
    list_filter = ["state", "currency", "tenant"]
    date_hierarchy = "recorded_at"
    search_fields = ["uuid", "stripe_invoice_item_id"]
    actions = ["credit"]

    def get_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in ("study", "study_instance_uid")]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Credit the selected charges (audited; a negative invoice item in Stripe)")
    def credit(self, request, queryset):
        actor = _operator(request)
        done = 0
        for charge in queryset.select_related("tenant"):
            charge_credit(charge=charge, reason=f"credited by operator {request.user.email}", actor=actor)
            done += 1
        messages.success(request, f"{done} charge(s) credited.")

    def get_urls(self):
        return [path("overview/", self.admin_site.admin_view(self.overview), name="billing_overview"),
                *super().get_urls()]

    def overview(self, request):
        """Studies and revenue per clinic per month, failed payments, clinics in grace."""
        billed = [Charge.PRICED, Charge.SENT, Charge.INVOICED]
        months = (Charge.unscoped.annotate(month=TruncMonth("recorded_at")).values("month", "tenant__name", "currency")
                  .annotate(studies=Count("pk"), billed=Count("pk", filter=Q(state__in=billed)),
                            revenue=Sum("amount", filter=Q(state__in=billed)))
                  .order_by("-month", "tenant__name")[:500])
        context = {
            **self.admin_site.each_context(request), "title": "Billing overview", "months": months,
            "failed": Invoice.unscoped.exclude(last_payment_error="").exclude(status="paid").select_related("tenant"),
            "grace": BillingAccount.unscoped.filter(grace_ends_at__isnull=False).select_related("tenant"),
            "now": timezone.now(),
        }
        return TemplateResponse(request, "billing/admin_overview.html", context)


@admin.register(Invoice)
class InvoiceAdmin(AllClinicsAdmin):
    list_display = ["created_at", "tenant", "period", "stripe_id", "status", "amount_due", "currency",
                    "last_payment_error"]
    list_filter = ["status", "tenant"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    list_display = ["received_at", "type", "event_id", "tenant", "outcome"]
    list_filter = ["type"]
    search_fields = ["event_id"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # each event is kept: it is how a replay is told apart
