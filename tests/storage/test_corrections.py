"""Corrections without losing the original, on real SeaweedFS regions: a study's patient
details, a series moved to the right study, two studies merged. Each is a new header on
every image (pixel data bytes untouched) in both regions, served by every door at once,
audited with before and after, reversible; the previous headers are kept; billing counts a
merged study once; and what the standard or common sense forbids is refused, nothing changed."""

import io
import json
from datetime import date

import pydicom
import pytest
from django.test import Client
from django.urls import reverse

from archive.corrections import services
from archive.corrections.models import HeaderVersion
from archive.models import Instance, Patient, Series, Study
from archive.outbox.models import Outbox
from archive.outbox.services import outbox_advance_many
from archive.storage.integrity import copy_check
from archive.storage.reader import open_instance
from billing.models import Charge
from tenants import roles
from tenants.audit import Actor, AuditEvent
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes

pytestmark = pytest.mark.usefixtures("s3_regions")


def actor(user):
    return Actor(AuditEvent.USER, str(user.pk), user.email)


def archived(tenant, *series_list) -> list[Study]:
    for series in series_list:
        for ds in series:
            assert ingest_bytes(tenant, to_bytes(ds)).ok
    rows = list(Outbox.objects.for_tenant(tenant).filter(kind="archive", done_at=None).values_list("pk", flat=True))
    assert all(r is True for r in outbox_advance_many(rows).values())
    return [Study.objects.for_tenant(tenant).get(study_instance_uid=s[0].StudyInstanceUID) for s in series_list]


def applied(correction):
    """What the worker does: the correction's outbox row, run here."""
    rows = list(Outbox.objects.for_tenant(correction.tenant).filter(kind="correct", done_at=None)
                .values_list("pk", flat=True))
    assert all(r is True for r in outbox_advance_many(rows).values())
    correction.refresh_from_db()
    assert correction.state == "applied", correction.error
    return correction


def reverted(correction):
    """What the worker does with a revert: the correction's outbox row, run here."""
    correction.refresh_from_db()
    assert correction.state == "reverting"
    rows = list(Outbox.objects.for_tenant(correction.tenant).filter(kind="correct", done_at=None)
                .values_list("pk", flat=True))
    assert all(r is True for r in outbox_advance_many(rows).values())
    correction.refresh_from_db()
    assert (correction.state, correction.error) == ("applied", "")
    assert correction.reverted_at is not None
    return correction


def stored(instance) -> pydicom.Dataset:
    with open_instance(instance) as f:
        return pydicom.dcmread(io.BytesIO(f.read()))


def pixel_bytes(instance) -> bytes:
    return stored(instance).PixelData


def test_patient_details_corrected_everywhere_and_reverted(tenant, make_member, login):
    desk = make_member(tenant, roles.FRONT_DESK)
    [study] = archived(tenant, make_ct_series(2, 16, 16, patient_name="Smiht^Jon", patient_id="MRN-1",
                                              accession="ACC1"))
    instances = list(Instance.objects.for_tenant(tenant).filter(study=study).order_by("pk"))
    pixels = {i.pk: pixel_bytes(i) for i in instances}
    old_keys = {i.pk: i.storage_key for i in instances}

    correction = services.correct_demographics(
        study=study, user=desk, actor=actor(desk), reason="typo at the front desk",
        changes={"PatientName": services.person_name("Smith", "John"), "PatientID": "MRN-1",
                 "PatientBirthDate": date(1970, 3, 4), "AccessionNumber": "ACC1"})
    assert (correction.state, correction.total) == ("running", 2)
    with pytest.raises(services.CorrectionRefused, match="being applied"):
        services.correct_demographics(study=study, user=desk, actor=actor(desk), changes={"AccessionNumber": "X"})
    correction = applied(correction)
    assert correction.done == 2
    assert correction.before == {"PatientName": "Smiht^Jon", "PatientBirthDate": "19700101"}
    assert correction.after == {"PatientName": "Smith^John", "PatientBirthDate": "19700304"}
    study.refresh_from_db()
    assert (study.patient_name, study.patient_birth_date, study.num_instances) == ("Smith^John", "19700304", 2)
    for instance in Instance.objects.for_tenant(tenant).filter(study=study):
        ds = stored(instance)
        assert (str(ds.PatientName), ds.PatientBirthDate) == ("Smith^John", "19700304")
        assert ds.PixelData == pixels[instance.pk]  # the pixel data's bytes as received
        assert instance.storage_key != old_keys[instance.pk]
        for region in ("primary", "secondary"):
            assert copy_check(instance, region).ok
    # The previous headers are kept, in both regions.
    versions = HeaderVersion.objects.for_tenant(tenant).filter(correction=correction)
    assert {v.old_storage_key for v in versions} == set(old_keys.values())
    [event] = AuditEvent.objects.for_tenant(tenant).filter(action="study.corrected.demographics")
    assert event.detail["before"]["PatientName"] == "Smiht^Jon" and event.detail["after"]["PatientName"] == "Smith^John"

    # Every door: QIDO-RS finds the new name, WADO-RS metadata says it.
    client = login(desk, the_client=Client())
    base = reverse("archive:dicomweb_studies", kwargs={"tenant_slug": tenant.slug})
    found = json.loads(client.get(base, {"PatientName": "SMITH*"}, HTTP_ACCEPT="application/dicom+json").content)
    assert [s["0020000D"]["Value"][0] for s in found] == [study.study_instance_uid]
    meta = json.loads(client.get(f"{base}/{study.study_instance_uid}/metadata").content)
    assert {m["00100010"]["Value"][0]["Alphabetic"] for m in meta} == {"Smith^John"}

    services.revert(correction=correction, user=desk, actor=actor(desk))
    # The request only asks: a worker reads the earlier headers back (from a region, for a
    # study tier 1 no longer holds), which a large study would not do within a request.
    study.refresh_from_db()
    assert study.patient_name == "Smith^John"
    with pytest.raises(services.CorrectionRefused, match="being reverted"):
        services.revert(correction=correction, user=desk, actor=actor(desk))
    with pytest.raises(services.CorrectionRefused, match="being applied"):
        services.correct_demographics(study=study, user=desk, actor=actor(desk), changes={"AccessionNumber": "X"})
    assert reverted(correction).done == 2
    study.refresh_from_db()
    assert (study.patient_name, study.patient_birth_date) == ("Smiht^Jon", "19700101")
    for instance in Instance.objects.for_tenant(tenant).filter(study=study):
        assert instance.storage_key == old_keys[instance.pk] and str(stored(instance).PatientName) == "Smiht^Jon"
        for region in ("primary", "secondary"):
            assert copy_check(instance, region).ok
    with pytest.raises(services.CorrectionRefused, match="reverted already"):
        services.revert(correction=correction, user=desk, actor=actor(desk))
    assert AuditEvent.objects.for_tenant(tenant).filter(action="study.correction_reverted").count() == 1
    assert AuditEvent.objects.for_tenant(tenant).filter(action="study.correction_revert_requested").count() == 1


def test_a_series_sent_under_the_wrong_patient_moves_to_the_right_study(tenant, make_member):
    desk = make_member(tenant, roles.FRONT_DESK)
    right, wrong = archived(
        tenant, make_ct_series(2, 16, 16, patient_name="Right^Rita", patient_id="R1", accession="A-R", seed=1),
        make_ct_series(1, 16, 16, patient_name="Wrong^Walt", patient_id="W1", accession="A-W", seed=2))
    wrong_series = Series.objects.for_tenant(tenant).get(study=wrong)
    moved = applied(services.move_series(series=wrong_series, target=right, user=desk, actor=actor(desk)))
    right.refresh_from_db()
    assert (right.num_series, right.num_instances) == (2, 3)
    assert not Study.objects.for_tenant(tenant).filter(pk=wrong.pk).exists()  # emptied, gone
    assert not Patient.objects.for_tenant(tenant).filter(patient_id="W1").exists()
    for instance in Instance.objects.for_tenant(tenant).filter(series=wrong_series):
        ds = stored(instance)
        assert (ds.StudyInstanceUID, ds.PatientID, str(ds.PatientName)) == (
            right.study_instance_uid, "R1", "Right^Rita")
    # One study now: the emptied study's charge is credited, so the clinic pays once.
    charge = Charge.objects.for_tenant(tenant).get(study_instance_uid=wrong.study_instance_uid)
    assert charge.state == Charge.CREDITED

    reverted(services.revert(correction=moved, user=desk, actor=actor(desk)))
    # Two studies again: the credit is taken back (Stripe never had it), each billed once.
    charge.refresh_from_db()
    assert charge.state == Charge.RECORDED and charge.credit_reason == ""
    back = Study.objects.for_tenant(tenant).get(study_instance_uid=wrong.study_instance_uid)
    assert (back.patient_name, back.num_instances) == ("Wrong^Walt", 1)
    right.refresh_from_db()
    assert right.num_instances == 2


def test_the_page_that_moves_a_series_names_the_patient_in_no_cookie(tenant, make_member, login):
    """The confirmation names the patient the series went to. A flash message kept in a
    cookie is signed, not encrypted, and the browser keeps it: it lives in the session."""
    desk = make_member(tenant, roles.FRONT_DESK)
    right, wrong = archived(
        tenant, make_ct_series(1, 16, 16, patient_name="Cookie^Carla", patient_id="C1", accession="A-C", seed=3),
        make_ct_series(1, 16, 16, patient_name="Other^Otto", patient_id="O1", accession="A-O", seed=4))
    series = Series.objects.for_tenant(tenant).get(study=wrong)
    client = login(desk, the_client=Client())
    response = client.post(reverse("archive:series_move", kwargs={"tenant_slug": tenant.slug, "pk": wrong.pk}),
                           {"series": series.pk, "target": "A-C"})
    assert response.status_code == 302
    set_cookies = " ".join(morsel.OutputString() for morsel in response.cookies.values())
    assert "Carla" not in set_cookies and "messages" not in response.cookies
    page = client.get(response["Location"])
    assert b"Moving the series to the study of" in page.content  # the message, from the session


def test_merge_of_one_patients_studies_and_refusals(tenant, make_member, login):
    desk = make_member(tenant, roles.FRONT_DESK)
    first, second, stranger = archived(
        tenant, make_ct_series(1, 16, 16, patient_name="Doe^Jane", patient_id="P1", accession="A1", seed=1),
        make_ct_series(1, 16, 16, patient_name="Doe^Jane", patient_id="P1", accession="A2", seed=2),
        make_ct_series(1, 16, 16, patient_name="Roe^Rick", patient_id="P2", accession="A3", seed=3))
    before = {i.pk: i.storage_key for i in Instance.objects.for_tenant(tenant)}

    # A merge across patients, and an ID that belongs to another patient: refused, audited.
    with pytest.raises(services.CorrectionRefused, match="different patients"):
        services.merge_studies(source=stranger, target=first, user=desk, actor=actor(desk))
    with pytest.raises(services.CorrectionRefused, match="two patients"):
        services.correct_demographics(study=stranger, user=desk, actor=actor(desk), changes={"PatientID": "P1"})
    for bad, message in (({"PatientID": "x" * 65}, "at most 64"), ({"AccessionNumber": "A\\B"}, "backslash"),
                         ({"PatientBirthDate": date(2999, 1, 1)}, "future")):
        with pytest.raises(services.CorrectionRefused, match=message):
            services.correct_demographics(study=stranger, user=desk, actor=actor(desk), changes=bad)
    assert {i.pk: i.storage_key for i in Instance.objects.for_tenant(tenant)} == before  # nothing changed
    assert AuditEvent.objects.for_tenant(tenant).filter(action="study.correction_refused").count() == 5

    applied(services.merge_studies(source=second, target=first, user=desk, actor=actor(desk)))
    first.refresh_from_db()
    assert first.num_instances == 2 and not Study.objects.for_tenant(tenant).filter(pk=second.pk).exists()
    assert Charge.objects.for_tenant(tenant).get(study_instance_uid=second.study_instance_uid).state == "credited"
    assert Charge.objects.for_tenant(tenant).get(study_instance_uid=first.study_instance_uid).state != "credited"

    # Without the permission: refused, audited, nothing changed.
    viewer = login(make_member(tenant, roles.VIEWER), the_client=Client())
    url = reverse("archive:study_correct", kwargs={"tenant_slug": tenant.slug, "pk": stranger.pk})
    assert viewer.post(url, {"family_name": "X", "patient_id": "P2"}).status_code == 403
    stranger.refresh_from_db()
    assert stranger.patient_name == "Roe^Rick"


def test_deleting_a_corrected_study_removes_its_previous_headers_too(tenant, owner, make_member,
                                                                     django_capture_on_commit_callbacks):
    from archive.retention.deletion import deletion_request_approve, deletion_request_create
    from cloudpacs.objectstore.objects import object_exists

    second = make_member(tenant, roles.ADMIN)
    [study] = archived(tenant, make_ct_series(1, 16, 16, patient_name="Gone^Gary", patient_id="G1"))
    correction = applied(services.correct_demographics(study=study, user=owner, actor=actor(owner),
                                                       changes={"PatientName": "Gone^Garry"}))
    old = [v.old_storage_key for v in HeaderVersion.objects.for_tenant(tenant).filter(correction=correction)]
    request = deletion_request_create(tenant=tenant, study=study, user=owner, reason="sent in error",
                                      override_retention=True, actor=actor(owner))
    with django_capture_on_commit_callbacks(execute=True):
        tombstone = deletion_request_approve(tenant=tenant, request_id=request.pk, user=second, actor=actor(second))
    assert set(old) <= set(tombstone.storage_keys) and tombstone.num_instances == 1
    for key in tombstone.storage_keys:
        for region in ("primary", "secondary"):
            assert not object_exists(region, key), (key, region)


def test_a_revert_after_a_later_correction_is_refused_and_audited(tenant, make_member):
    """Refused at once, nothing changed, and the refusal stays in the clinic's log (it was
    written inside the revert's transaction once, and rolled back with it)."""
    desk = make_member(tenant, roles.FRONT_DESK)
    [study] = archived(tenant, make_ct_series(1, 16, 16, patient_name="Late^Lou", patient_id="L1"))
    first = applied(services.correct_demographics(study=study, user=desk, actor=actor(desk),
                                                  changes={"PatientName": "Late^Louis"}))
    applied(services.correct_demographics(study=study, user=desk, actor=actor(desk),
                                          changes={"PatientName": "Late^Luis"}))
    with pytest.raises(services.CorrectionRefused, match="revert that one first"):
        services.revert(correction=first, user=desk, actor=actor(desk))
    [event] = AuditEvent.objects.for_tenant(tenant).filter(action="study.correction_refused")
    assert event.detail == {"attempted": "revert", "reason": "A later correction changed these images: "
                                                             "revert that one first."}
    first.refresh_from_db()
    assert (first.state, first.reverted_at, first.reverted_by) == ("applied", None, None)
    assert not Outbox.objects.for_tenant(tenant).filter(kind="correct", done_at=None).exists()


def test_a_revert_whose_work_was_lost_is_queued_again_and_finishes(tenant, make_member):
    """A worker of an older release (which knew no revert) marks the row done without doing
    it, or the row is lost: the periodic check queues the work again, once the row has been
    quiet a while, and the revert finishes instead of blocking the study for good."""
    from datetime import timedelta

    from django.utils import timezone

    from archive.corrections.tasks import corrections_orphaned_requeue

    desk = make_member(tenant, roles.FRONT_DESK)
    [study] = archived(tenant, make_ct_series(1, 16, 16, patient_name="Lost^Lee", patient_id="LL1"))
    correction = applied(services.correct_demographics(study=study, user=desk, actor=actor(desk),
                                                       changes={"PatientName": "Lost^Leo"}))
    services.revert(correction=correction, user=desk, actor=actor(desk))
    Outbox.objects.for_tenant(tenant).filter(kind="correct", done_at=None).update(done_at=timezone.now())
    assert corrections_orphaned_requeue() == 0  # too recent: a worker may still be on it
    later = timezone.now() + timedelta(hours=1)
    assert corrections_orphaned_requeue(now=later) == 1
    assert corrections_orphaned_requeue(now=later) == 0  # queued once
    reverted(correction)
    study.refresh_from_db()
    assert study.patient_name == "Lost^Lee"
    assert corrections_orphaned_requeue(now=later + timedelta(hours=1)) == 0  # applied now: nothing to do


def test_a_second_run_of_an_applied_correction_changes_nothing(tenant, make_member):
    """The outbox sweeper may hand a long correction to a second worker: the second run
    finds it applied, removes its own objects and leaves the images and the state alone."""
    desk = make_member(tenant, roles.FRONT_DESK)
    [study] = archived(tenant, make_ct_series(1, 16, 16, patient_name="Twice^Tom", patient_id="T1"))
    stale = services.correct_demographics(study=study, user=desk, actor=actor(desk),
                                          changes={"PatientName": "Twice^Thomas"})
    applied(stale)
    key = Instance.objects.for_tenant(tenant).get(study=study).storage_key
    services.correction_apply(stale)  # `stale` still says RUNNING, as a second worker's copy would
    stale.refresh_from_db()
    assert stale.state == "applied"
    assert Instance.objects.for_tenant(tenant).get(study=study).storage_key == key
    assert HeaderVersion.objects.for_tenant(tenant).filter(correction=stale).count() == 1


def test_revert_after_tier_one_lost_the_earlier_header(tenant, make_member):
    from archive.storage.tier1 import tier1_path

    desk = make_member(tenant, roles.FRONT_DESK)
    [study] = archived(tenant, make_ct_series(1, 16, 16, patient_name="Swept^Sue", patient_id="S1"))
    correction = applied(services.correct_demographics(study=study, user=desk, actor=actor(desk),
                                                       changes={"PatientName": "Swept^Susan"}))
    for version in HeaderVersion.objects.for_tenant(tenant).filter(correction=correction):
        tier1_path(version.old_storage_key).unlink()  # as the hourly leftovers sweep does
    reverted(services.revert(correction=correction, user=desk, actor=actor(desk)))
    assert str(stored(Instance.objects.for_tenant(tenant).get(study=study)).PatientName) == "Swept^Sue"


def test_a_moved_image_keeps_nothing_of_the_wrong_patient(tenant, make_member):
    desk = make_member(tenant, roles.FRONT_DESK)
    right_series = make_ct_series(1, 16, 16, patient_name="Right^Rita", patient_id="R1", seed=1)
    for ds in right_series:
        for keyword in ("StudyDescription", "PatientSex"):  # the target says nothing of these
            if keyword in ds:
                delattr(ds, keyword)
    wrong_series = make_ct_series(1, 16, 16, patient_name="Wrong^Walt", patient_id="W1", seed=2)
    for ds in wrong_series:
        ds.PatientAge, ds.PatientComments, ds.IssuerOfPatientID = "061Y", "allergic to contrast", "OTHER-HOSP"
        other = pydicom.Dataset()
        other.PatientID = "W1-OLD"
        ds.OtherPatientIDsSequence = [other]
    right, wrong = archived(tenant, right_series, wrong_series)
    moved = Series.objects.for_tenant(tenant).get(study=wrong)
    applied(services.move_series(series=moved, target=right, user=desk, actor=actor(desk)))
    for instance in Instance.objects.for_tenant(tenant).filter(series=moved):
        ds = stored(instance)
        assert (ds.PatientID, str(ds.PatientName), ds.PatientSex) == ("R1", "Right^Rita", "")  # Type 2: empty
        for gone in ("PatientAge", "PatientComments", "IssuerOfPatientID", "OtherPatientIDsSequence",
                     "StudyDescription"):
            assert gone not in ds, gone
    assert Patient.objects.for_tenant(tenant).filter(patient_id="R1").count() == 1


def test_a_revert_with_storage_out_of_reach_is_retried_then_said_on_the_page(tenant, make_member, login,
                                                                           monkeypatch):
    """The worker cannot read the earlier headers back: the row is retried; when it gives
    up, the correction stays applied, the study page says the revert was not done, the
    failure is audited, and a later revert works."""
    from archive.corrections.work import MAX_ATTEMPTS
    from archive.storage.tiers import InstanceUnavailable

    desk = make_member(tenant, roles.FRONT_DESK)
    [study] = archived(tenant, make_ct_series(1, 16, 16, patient_name="Far^Fay", patient_id="F1"))
    correction = applied(services.correct_demographics(study=study, user=desk, actor=actor(desk),
                                                       changes={"PatientName": "Far^Faye"}))
    client = login(desk, the_client=Client())
    url = reverse("archive:correction_revert", kwargs={"tenant_slug": tenant.slug, "correction_id": correction.pk})
    response = client.post(url, follow=True)
    assert b"Reverting the correction" in response.content and b"reverting: 0 of 1 images" in response.content

    def unreachable(*args, **kwargs):
        raise InstanceUnavailable("primary: timed out; secondary: timed out")

    monkeypatch.setattr(services, "open_instance", unreachable)
    row = Outbox.objects.for_tenant(tenant).filter(kind="correct", done_at=None).get()
    [result] = outbox_advance_many([row.pk]).values()
    assert isinstance(result, InstanceUnavailable)  # retried
    correction.refresh_from_db()
    assert correction.state == "reverting"
    Outbox.objects.for_tenant(tenant).filter(pk=row.pk).update(attempts=MAX_ATTEMPTS - 1)
    assert outbox_advance_many([row.pk]) == {row.pk: True}
    correction.refresh_from_db()
    assert (correction.state, correction.reverted_at) == ("applied", None)
    assert correction.error.startswith("Revert not done: gave up")
    assert AuditEvent.objects.for_tenant(tenant).filter(action="study.correction_revert_failed").count() == 1
    page = client.get(reverse("archive:study", kwargs={"tenant_slug": tenant.slug, "pk": study.pk})).content
    assert b"Revert not done" in page and b"reverting:" not in page
    study.refresh_from_db()
    assert study.patient_name == "Far^Faye"

    monkeypatch.undo()
    client.post(url)
    reverted(correction)
    study.refresh_from_db()
    assert study.patient_name == "Far^Fay"


@pytest.mark.worker
def test_a_real_worker_archives_then_applies_a_correction(tenant, make_member, start_worker):
    """As deployed: a Celery worker on Redis archives the image into both regions, then
    applies the front desk's correction from the outbox."""
    from archive.outbox.services import outbox_publish_gathered
    from archive.storage.models import InstanceCopy
    from tests.servers import wait_for

    desk = make_member(tenant, roles.FRONT_DESK)
    start_worker()
    [ds] = make_ct_series(1, 16, 16, patient_name="Real^Rae", patient_id="RW1")
    instance = ingest_bytes(tenant, to_bytes(ds)).instance
    outbox_publish_gathered()
    wait_for(lambda: InstanceCopy.objects.for_tenant(tenant).filter(instance=instance, state="verified").count() == 2,
             timeout=90, interval=0.5, what="the worker to archive the image")
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=ds.StudyInstanceUID)
    correction = services.correct_demographics(study=study, user=desk, actor=actor(desk),
                                               changes={"PatientName": "Real^Ray"})
    outbox_publish_gathered()

    def applied_by_worker():
        correction.refresh_from_db()
        return correction.state == "applied"

    wait_for(applied_by_worker, timeout=90, interval=0.5, what="the worker to apply the correction")
    instance.refresh_from_db()
    assert str(stored(instance).PatientName) == "Real^Ray"
    for region in ("primary", "secondary"):
        assert copy_check(instance, region).ok
