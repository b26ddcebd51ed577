"""One charge per study, recorded with the study, priced once it has settled."""

from datetime import timedelta

import pytest
from django.utils import timezone

from archive.ingest.service import Outcome, instances_ingest
from archive.ingest.spool import spool_chunks
from archive.models import Study
from archive.outbox.models import Outbox
from archive.outbox.services import outbox_advance_many
from billing.charges import BILL
from billing.models import BillingAccount, Charge, Plan, PriceVersion
from billing.selectors import billing_status
from tenants.audit import Actor
from tests.dicom_factory import make_ct_series, to_bytes

ACTOR = Actor.system("test")


def ingest(tenant, datasets, **kwargs):
    return instances_ingest(tenant=tenant, actor=ACTOR, spooled=[spool_chunks([to_bytes(ds)]) for ds in datasets],
                            **kwargs)


def run_billing(tenant):
    rows = list(Outbox.objects.for_tenant(tenant).filter(kind=BILL, done_at=None).values_list("pk", flat=True))
    return outbox_advance_many(rows)


def test_a_new_study_is_charged_once_whatever_follows(tenant):
    series = make_ct_series(3)
    ingest(tenant, series[:1])
    assert Charge.objects.for_tenant(tenant).count() == 1
    ingest(tenant, series)  # re-sent instances and the rest of the series
    more = make_ct_series(2, study_uid=series[0].StudyInstanceUID, patient_id=series[0].PatientID)
    ingest(tenant, more)  # a new series of the same study
    charge = Charge.objects.for_tenant(tenant).get()
    assert charge.study.study_instance_uid == series[0].StudyInstanceUID
    assert charge.state == Charge.RECORDED and charge.amount is None
    # One bill work row, written with the study.
    assert Outbox.objects.for_tenant(tenant).filter(kind=BILL).count() == 1


def test_refused_input_is_never_billed(tenant):
    results = instances_ingest(tenant=tenant, actor=ACTOR, spooled=[spool_chunks([b"not dicom" * 40])])
    assert results[0].outcome == Outcome.FAILED
    assert not Charge.objects.for_tenant(tenant).exists()


def test_priced_at_the_version_in_effect_when_recorded(tenant):
    plan = Plan.objects.get(is_default=True)
    ingest(tenant, make_ct_series(1))
    # A price change after the study was stored does not touch its charge.
    PriceVersion.objects.create(plan=plan, currency="usd", study_amount=9999)
    run_billing(tenant)
    charge = Charge.objects.for_tenant(tenant).get()
    assert (charge.state, charge.amount, charge.currency) == (Charge.PRICED, 500, "usd")
    ingest(tenant, make_ct_series(1, patient_id="P2"))
    run_billing(tenant)
    assert Charge.objects.for_tenant(tenant).order_by("-recorded_at", "-pk").first().amount == 9999


def test_clinic_override_modality_and_size_class_and_free_allowance(tenant):
    PriceVersion.objects.create(tenant=tenant, currency="eur", study_amount=400, modality_amounts={"CT": 700},
                                large_study_bytes=10_000, large_study_amount=2000, free_studies_per_month=1)
    ingest(tenant, make_ct_series(1, 8, 8, patient_id="A"))  # small CT: the free one of the month
    ingest(tenant, make_ct_series(1, 8, 8, patient_id="B"))  # small CT: the CT price
    ingest(tenant, make_ct_series(1, 128, 128, patient_id="C"))  # over 10 kB: the large-study price
    run_billing(tenant)
    charges = list(Charge.objects.for_tenant(tenant).order_by("pk"))
    assert [(c.state, c.amount, c.currency) for c in charges] == [
        (Charge.FREE, 0, "eur"), (Charge.PRICED, 700, "eur"), (Charge.PRICED, 2000, "eur")]


def test_a_study_still_arriving_is_priced_later(tenant, settings):
    settings.BILLING_SETTLE_SECONDS = 3600
    ingest(tenant, make_ct_series(1, patient_id="A"))
    ingest(tenant, make_ct_series(1, patient_id="B"))
    from unittest import mock

    # The re-look is scheduled on the outbox's own task, a message in an hour; the mock
    # stands for the broker only to read that message here (the worker tests run the real one).
    with mock.patch("billing.work.process.apply_async") as later:
        results = run_billing(tenant)
    assert list(results.values()) == [False, False]
    later.assert_called_once()  # one message for both charges, not one each
    assert later.call_args.args[0] == (sorted(results),)
    assert later.call_args.kwargs["countdown"] > 3500
    assert {c.state for c in Charge.objects.for_tenant(tenant)} == {Charge.RECORDED}
    statuses = billing_status(tenant=tenant)["charges"]
    assert [(s["amount"], s["amount_final"], s["state"]) for s in statuses] == [(500, False, "recorded")] * 2


def test_a_deleted_study_keeps_its_charge_and_is_not_charged_again(tenant, make_member):
    from archive.retention.deletion import deletion_request_approve, deletion_request_create
    from tenants import roles

    series = make_ct_series(1, study_date="19900101")  # long past retention
    ingest(tenant, series)
    run_billing(tenant)
    study = Study.objects.for_tenant(tenant).get()
    first, second = make_member(tenant, roles.ADMIN), make_member(tenant, roles.OWNER)
    request = deletion_request_create(tenant=tenant, study=study, user=first, reason="sent in error",
                                      override_retention=True, actor=ACTOR)
    deletion_request_approve(tenant=tenant, request_id=request.pk, user=second, actor=ACTOR)
    assert not Study.objects.for_tenant(tenant).exists()
    charge = Charge.objects.for_tenant(tenant).get()
    assert (charge.study_id, charge.state) == (None, Charge.PRICED)  # kept: no automatic refund
    ingest(tenant, series)  # sent again: a new study row, the same StudyInstanceUID
    assert Charge.objects.for_tenant(tenant).count() == 1
    assert all(run_billing(tenant).values())


def test_restore_does_not_bill(tenant):
    ds = make_ct_series(1)[0]
    from archive.models import Instance

    instances_ingest(tenant=tenant, actor=ACTOR, spooled=[spool_chunks([to_bytes(ds)])],
                     storage_keys=[Instance.new_storage_key(tenant.pk)])
    assert not Charge.objects.for_tenant(tenant).exists()


def test_stripe_off_records_and_shows_not_sent(tenant, settings):
    settings.STRIPE_SECRET_KEY = ""
    ingest(tenant, make_ct_series(1))
    assert list(run_billing(tenant).values()) == [True]
    status = billing_status(tenant=tenant)
    assert status["stripe_enabled"] is False and not status["uploads_refused"]
    [charge] = status["charges"]
    assert (charge["state"], charge["amount"], charge["currency"], charge["stripe_id"]) == ("priced", 500, "usd", None)
    assert BillingAccount.objects.for_tenant(tenant).get().grace_ends_at is None  # nothing is enforced


@pytest.mark.parametrize("days_left, refused", [(1, False), (-1, True)])
def test_uploads_refused_only_after_grace(tenant, settings, days_left, refused):
    from billing import grace

    settings.STRIPE_SECRET_KEY = "sk_test_x"
    account = grace.account_get(tenant)
    account.grace_reason = BillingAccount.PAYMENT_FAILED
    account.grace_started_at = timezone.now() - timedelta(days=14)
    account.grace_ends_at = timezone.now() + timedelta(days=days_left)
    account.save()
    grace._refusals.clear()
    assert (grace.upload_refusal(tenant) is not None) is refused


def test_price_rules_never_make_a_richer_study_cheaper():
    price = PriceVersion(currency="usd", study_amount=500, modality_amounts={"MR": 1500, "US": 200, "SR": 0},
                         large_study_bytes=1000, large_study_amount=1000)
    assert price.amount_for(modalities=["US"], size_bytes=10) == 200
    assert price.amount_for(modalities=["US", "CT"], size_bytes=10) == 500  # CT has no price of its own
    assert price.amount_for(modalities=["MR"], size_bytes=5000) == 1500  # large, but MR costs more
    assert price.amount_for(modalities=["US"], size_bytes=5000) == 1000
    assert price.amount_for(modalities=[], size_bytes=10) == 500


def test_a_study_priced_at_zero_leaves_the_free_allowance_alone(tenant):
    PriceVersion.objects.create(tenant=tenant, currency="usd", study_amount=400, modality_amounts={"SR": 0},
                                free_studies_per_month=1)
    ingest(tenant, make_ct_series(1, modality="SR", patient_id="A"))
    ingest(tenant, make_ct_series(1, patient_id="B"))
    ingest(tenant, make_ct_series(1, patient_id="C"))
    run_billing(tenant)
    charges = list(Charge.objects.for_tenant(tenant).order_by("pk"))
    assert [(c.amount, c.within_allowance) for c in charges] == [(0, False), (0, True), (400, False)]


def test_a_new_price_cannot_start_in_the_past():
    from django.core.exceptions import ValidationError

    plan = Plan.objects.get(is_default=True)
    with pytest.raises(ValidationError):
        PriceVersion(plan=plan, currency="usd", study_amount=1,
                     effective_from=timezone.now() - timedelta(days=1)).full_clean()
