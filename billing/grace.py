"""The grace period: what a payment problem does to a clinic, and nothing more.

A failed payment (or a charge due while the clinic has no card) starts BILLING_GRACE_DAYS
of grace: the clinic's billing members see a banner and get an email. After it, new
uploads are refused (HTTP 402, a C-STORE refusal status) until the problem is cleared.
Viewing, sharing and downloads never stop, and nothing is ever deleted for non-payment.
While Stripe is not configured nothing is enforced: there is no way to pay."""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from billing import stripe_api
from billing.models import BillingAccount
from tenants import roles
from tenants.audit import Actor, audit_record
from tenants.models import Membership

log = logging.getLogger(__name__)

SYSTEM = Actor.system("billing")


def account_get(tenant) -> BillingAccount:
    return BillingAccount.objects.for_tenant(tenant).get_or_create()[0]


def account_for_update(tenant) -> BillingAccount:
    """The clinic's account row, locked until the caller's transaction ends."""
    account_get(tenant)
    return BillingAccount.objects.for_tenant(tenant).select_for_update().get()


def grace_start(account: BillingAccount, reason: str, detail: str = "") -> bool:
    """Start the grace period unless one runs; True when this started it. The email to the
    clinic's billing members goes once the caller's transaction commits."""
    if account.in_grace:
        if reason == BillingAccount.PAYMENT_FAILED and account.grace_reason != reason:
            account.grace_reason = reason  # the stronger reason shows; the deadline stays
            account.save(update_fields=["grace_reason", "updated_at"])
        return False
    now = timezone.now()
    account.grace_reason, account.grace_started_at = reason, now
    account.grace_ends_at = now + timedelta(days=settings.BILLING_GRACE_DAYS)
    account.save(update_fields=["grace_reason", "grace_started_at", "grace_ends_at", "updated_at"])
    audit_record(tenant=account.tenant, actor=SYSTEM, action="billing.grace_started", obj_type="billing",
                 detail={"reason": reason, "ends": account.grace_ends_at.isoformat(), "detail": detail[:200]})
    tenant_id = account.tenant_id
    transaction.on_commit(lambda: _email_grace(tenant_id))
    _refusals.clear()
    return True


def grace_clear(account: BillingAccount, why: str) -> bool:
    if not account.in_grace:
        return False
    reason = account.grace_reason
    account.grace_reason, account.grace_started_at, account.grace_ends_at = "", None, None
    account.save(update_fields=["grace_reason", "grace_started_at", "grace_ends_at", "updated_at"])
    audit_record(tenant=account.tenant, actor=SYSTEM, action="billing.grace_cleared", obj_type="billing",
                 detail={"reason": reason, "why": why})
    _refusals.clear()
    return True


def on_charge_due(account: BillingAccount) -> None:
    """A charge is to be paid: with Stripe live and no card on file, the clinic is told and
    has its grace period to add one."""
    if stripe_api.enabled() and not account.has_card:
        grace_start(account, BillingAccount.NO_PAYMENT_METHOD)


def billing_members_emails(tenant_id: int) -> list[str]:
    members = Membership.unscoped.filter(tenant_id=tenant_id, user__is_active=True).select_related("user")
    return sorted({m.user.email for m in members if roles.has_perm(m.role, "billing.manage")})


def _email_grace(tenant_id: int) -> None:
    account = BillingAccount.unscoped.select_related("tenant").filter(tenant_id=tenant_id).first()
    if account is None or not account.in_grace:
        return
    recipients = billing_members_emails(tenant_id) + ([account.billing_email] if account.billing_email else [])
    if not recipients:
        return
    what = ("a payment failed" if account.grace_reason == BillingAccount.PAYMENT_FAILED
            else "studies are being billed and no card is on file")
    body = (f"CloudPACS billing for {account.tenant.name}: {what}.\n\n"
            f"Please update the payment method on the clinic's billing page before "
            f"{account.grace_ends_at:%Y-%m-%d}. Until then everything works as usual; after it, new "
            "uploads are paused until the balance is paid. Viewing, sharing and downloads never "
            "stop, and nothing is deleted.\n\n"
            f"{settings.SITE_URL.rstrip('/')}/t/{account.tenant.slug}/billing/\n")
    try:
        send_mail(f"Action needed: billing for {account.tenant.name}", body, None, sorted(set(recipients)))
    except Exception:  # noqa: BLE001 - the banner still says it; the email is a courtesy
        log.warning("could not send the grace email of clinic %s", tenant_id, exc_info=True)


# Upload admission is asked once per upload request: the answer is kept per process for a
# few seconds (a grace period ends after days; a payment clears it within this delay).
_REFUSAL_TTL = 15.0
_refusals: dict[int, tuple[float, str | None]] = {}


def upload_refusal(tenant) -> str | None:
    """Why uploads to this clinic are refused now (grace over, unpaid), or None."""
    if not stripe_api.enabled():
        return None
    cached = _refusals.get(tenant.pk)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    account = BillingAccount.objects.for_tenant(tenant).only("grace_ends_at", "grace_reason").first()
    reason = None
    if account is not None and account.grace_ends_at is not None and account.grace_ends_at <= timezone.now():
        reason = ("Uploads to this clinic are paused: payment is overdue since "
                  f"{account.grace_ends_at:%Y-%m-%d}. A clinic admin can settle it on the billing page; "
                  "viewing, sharing and downloads are not affected.")
    _refusals[tenant.pk] = (time.monotonic() + _REFUSAL_TTL, reason)
    return reason
