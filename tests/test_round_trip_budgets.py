"""Round trips to PostgreSQL of the requests a clinic makes most, counted from libpq's
protocol trace (tests/round_trips.py): on two cores under load each one costs a context
switch each way, and they were most of a study search's time. A change that adds one
fails here and says what it sent; a change that removes one lowers the budget."""

import pytest
from django.db import connection  # noqa: F401 - the skip condition reads it

from tests.archive.dicomweb_data import bearer, ingest_datasets, url
from tests.archive.stow_helpers import multipart
from tests.dicom_factory import make_ct_series, to_bytes
from tests.round_trips import counting_round_trips

pytestmark = [
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="round trips are PostgreSQL's"),
    pytest.mark.django_db(transaction=True),  # autocommit, as deployed
]


@pytest.fixture
def token(tenant, make_token):
    return make_token(tenant, scopes=("upload", "read"))


@pytest.fixture
def stow(client, tenant, token):
    """STOW-RS of one dataset, as its own multipart body."""
    def post(ds):
        body, content_type = multipart([to_bytes(ds)])
        return client.post(url(tenant, "studies"), data=body, content_type=content_type,
                           HTTP_ACCEPT="application/dicom+json", **bearer(token))

    return post


def test_a_study_search_costs_four_round_trips(client, tenant, token):
    ingest_datasets(tenant, make_ct_series(1, 8, 8, patient_id="P1"))
    client.get(url(tenant, "studies"), {"PatientID": "P1"}, **bearer(token))  # the audit key check, once a process
    with counting_round_trips() as trips:
        response = client.get(url(tenant, "studies"), {"PatientID": "P1"}, **bearer(token))
    assert response.status_code == 200 and len(response.json()) == 1
    # The token; the search; the audit chain's lock and end, with the BEGIN; the event, with the COMMIT.
    assert trips.count == 4, "\n".join(trips.messages)


def test_a_one_image_study_costs_at_most_six_round_trips(stow):
    assert stow(make_ct_series(1, 8, 8)[0]).status_code == 200  # the data key and the audit key check
    with counting_round_trips() as trips:
        response = stow(make_ct_series(1, 8, 8)[0])
    assert response.status_code == 200
    # The token, its series, the data key; the patient and study look-ups with the new rows'
    # keys; BEGIN with the rows, their work and the retention policy's and audit chain's
    # locks; the retention row and the events with the COMMIT (archive/ingest/new_study.py).
    assert trips.count <= 6, "\n".join(trips.messages)


def test_a_new_patients_one_image_study_costs_no_more(stow):
    """The patient's row goes in with the study's."""
    assert stow(make_ct_series(1, 8, 8, patient_id="FIRST")[0]).status_code == 200
    with counting_round_trips() as trips:
        response = stow(make_ct_series(1, 8, 8, patient_id="NEW-PATIENT")[0])
    assert response.status_code == 200
    assert trips.count <= 6, "\n".join(trips.messages)
