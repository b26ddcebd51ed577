"""Four modalities sending one patient's studies at once deadlocked the index (bench
cstore-4, PostgreSQL): the patient upsert's DO UPDATE locked the row FOR UPDATE, so
another transaction adding a study of that patient waited at its commit (its deferred
foreign-key check) while holding the retention policy's lock, which the first wanted next.
Now a request that finds the patient made meanwhile takes it without locking it."""

import threading

import pytest
from django.db import OperationalError, connection, transaction

from archive.ingest.parse import parse_instance
from archive.ingest.service import patients_for
from archive.models import Patient, Study
from tests.dicom_factory import make_ct_series, to_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def _parsed(tmp_path, seed: int):
    path = tmp_path / f"{seed}.dcm"
    path.write_bytes(to_bytes(make_ct_series(1, 8, 8, patient_id="PID-LOCK", seed=seed)[0]))
    return parse_instance(path)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and deferred foreign keys are PostgreSQL's")
def test_taking_a_patient_made_meanwhile_does_not_lock_it(tenant, tmp_path):
    first, second = _parsed(tmp_path, 1), _parsed(tmp_path, 2)
    made, taken, go_on, done = threading.Event(), threading.Event(), threading.Event(), threading.Event()
    errors = []

    def maker():  # a request that creates the patient and commits a moment later
        try:
            with transaction.atomic():
                patients_for(tenant, [first])
                made.set()
                taken.wait(10)
        finally:
            connection.close()

    def taker():  # a request that did not see it yet: its insert waits, then takes the row
        try:
            with transaction.atomic():
                made.wait(10)
                threading.Timer(0.5, taken.set).start()  # the maker commits while we wait
                patients_for(tenant, [second])
                done.set()
                go_on.wait(10)  # ... and holds its transaction open, as an ingest does
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=maker), threading.Thread(target=taker)]
    for thread in threads:
        thread.start()
    assert done.wait(10)
    patient = Patient.objects.for_tenant(tenant).get(patient_id="PID-LOCK")
    try:
        with transaction.atomic():  # a third request commits a study of that patient
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '3s'")
            Study.objects.for_tenant(tenant).create(study_instance_uid="1.2.3.4.5", patient=patient)
    except OperationalError as exc:
        pytest.fail(f"the study's commit waited on the patient row: {exc}")
    finally:
        go_on.set()
        for thread in threads:
            thread.join(10)
    assert errors == []
