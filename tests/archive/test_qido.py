"""QIDO-RS: matching, return attributes, paging, character sets, errors and isolation.
Views are called through Django's test client with a bearer API token."""

import json
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pydicom.data import get_charset_files

from tests.archive.dicomweb_data import bearer, bundled, ingest, ingest_datasets, url
from tests.dicom_factory import make_ct_series


@pytest.fixture
def token(tenant, make_token):
    return make_token(tenant, scopes=("read",))


@pytest.fixture
def studies(tenant):
    """Three patients, four studies, CT and MR."""
    made = {
        "doe": make_ct_series(2, 8, 8, patient_name="Doe^Jane", patient_id="P1", study_date="20200115",
                              accession="A1"),
        "doe2": make_ct_series(1, 8, 8, patient_name="Doe^Jane", patient_id="P1", study_date="20211001",
                               accession="A2", modality="MR"),
        "smith": make_ct_series(3, 8, 8, patient_name="Smith^John", patient_id="P2",
                                study_date="20201231", accession="A3"),
        "percent": make_ct_series(1, 8, 8, patient_name="Per%cent^Odd_Name", patient_id="P3",
                                  study_date="20190101", accession="A_4"),
    }
    for datasets in made.values():
        ingest_datasets(tenant, datasets)
    return {k: v[0].StudyInstanceUID for k, v in made.items()}


def search(client, tenant, token, rest="studies", **params):
    response = client.get(url(tenant, rest), params, **bearer(token))
    return response


def uids(response, tag="0020000D"):
    assert response.status_code == 200, response.content
    return sorted(item[tag]["Value"][0] for item in response.json())


@pytest.mark.parametrize("params, expected", [
    ({"PatientID": "P1"}, {"doe", "doe2"}),
    ({"00100020": "P2"}, {"smith"}),
    ({"PatientName": "doe^jane"}, {"doe", "doe2"}),  # PN: case-insensitive
    ({"PatientName": "DO*"}, {"doe", "doe2"}),
    ({"PatientName": "sm?th*"}, {"smith"}),
    ({"PatientName": "PER%*"}, {"percent"}),  # % is a literal, not a SQL wildcard
    ({"PatientName": "PER_*"}, set()),
    ({"AccessionNumber": "A_4"}, {"percent"}),
    ({"AccessionNumber": "A?4"}, {"percent"}),
    ({"StudyDate": "20200101-20201231"}, {"doe", "smith"}),
    ({"StudyDate": "-20200115"}, {"doe", "percent"}),
    ({"StudyDate": "20201231-"}, {"smith", "doe2"}),
    ({"StudyDate": "20201231"}, {"smith"}),
    ({"ModalitiesInStudy": "MR"}, {"doe2"}),
    ({"ModalitiesInStudy": "CT,MR", "PatientID": "P1"}, {"doe", "doe2"}),
    ({"PatientName": "jan", "fuzzymatching": "true"}, {"doe", "doe2"}),
    ({"PatientName": "*"}, {"doe", "doe2", "smith", "percent"}),
])
def test_study_matching(client, tenant, token, studies, params, expected):
    assert uids(search(client, tenant, token, **params)) == sorted(studies[k] for k in expected)


def test_uid_list_comma_and_backslash(client, tenant, token, studies):
    wanted = sorted([studies["doe"], studies["smith"]])
    assert uids(search(client, tenant, token, StudyInstanceUID=",".join(wanted))) == wanted
    assert uids(search(client, tenant, token, StudyInstanceUID="\\".join(wanted))) == wanted


def test_required_study_attributes(client, tenant, token, studies):
    [item] = search(client, tenant, token, PatientID="P2").json()
    for tag in ("00080020", "00080030", "00080050", "00080056", "00080061", "00080090",
                "00100010", "00100020", "00100030", "00100040", "0020000D", "00200010",
                "00201206", "00201208", "00081190"):
        assert tag in item, tag
    assert item["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Smith^John"}]}
    assert item["00201208"]["Value"] == [3] and item["00201206"]["Value"] == [1]
    assert item["00080061"]["Value"] == ["CT"]
    assert item["00081190"]["Value"][0].endswith(f"/t/{tenant.slug}/dicomweb/studies/{studies['smith']}")


def test_includefield_from_stored_header(client, tenant, token, studies):
    [item] = search(client, tenant, token, PatientID="P2",
                    includefield="StudyDescription,00180050").json()
    assert item["00081030"]["Value"] == ["CT CHEST"]
    assert item["00180050"]["Value"] == [1.0] or item["00180050"]["Value"] == ["1.0"]
    [everything] = search(client, tenant, token, PatientID="P2", includefield="all").json()
    assert "00080005" not in everything or everything["00080005"]
    assert "7FE00010" not in everything and "00080018" not in everything


def test_series_and_instance_levels(client, tenant, token, studies):
    study = studies["smith"]
    series = search(client, tenant, token, f"studies/{study}/series").json()
    assert len(series) == 1 and series[0]["00201209"]["Value"] == [3]
    assert "00100010" not in series[0]  # under a study: series attributes only
    series_uid = series[0]["0020000E"]["Value"][0]
    instances = search(client, tenant, token, f"studies/{study}/series/{series_uid}/instances")
    numbers = [i["00200013"]["Value"][0] for i in instances.json()]
    assert numbers == [1, 2, 3]
    assert instances.json()[0]["00280100"]["Value"] == [16]
    # Across the clinic: series by modality, with the study's attributes included.
    mr = search(client, tenant, token, "series", Modality="MR").json()
    assert [s["0020000D"]["Value"][0] for s in mr] == [studies["doe2"]]
    assert mr[0]["00100010"]["Value"][0]["Alphabetic"] == "Doe^Jane"
    by_patient = search(client, tenant, token, "instances", PatientID="P1")
    assert len(by_patient.json()) == 3
    assert len(search(client, tenant, token, f"studies/{study}/instances", InstanceNumber="2").json()) == 1


def test_limit_offset_and_warning(client, tenant, token, studies):
    first = search(client, tenant, token, limit=3)
    assert len(first.json()) == 3
    assert "There are additional results that can be requested" in first.headers["Warning"]
    rest = search(client, tenant, token, limit=3, offset=3)
    assert len(rest.json()) == 1 and "Warning" not in rest.headers
    assert set(uids(first)) | set(uids(rest)) == set(studies.values())
    clamped = search(client, tenant, token, limit=5000)
    assert "maximum of 1000" in clamped.headers["Warning"]


def test_empty_result_is_200_and_empty_list(client, tenant, token, studies):
    response = search(client, tenant, token, PatientID="nobody")
    assert response.status_code == 200 and response.json() == []
    assert response["Content-Type"].startswith("application/dicom+json")


@pytest.mark.parametrize("params, message", [
    ({"NoSuchKeyword": "x"}, "unknown attribute"),
    ({"StudyDate": "2020"}, "date"),
    ({"StudyDate": "20200101-2021"}, "date"),
    ({"StudyInstanceUID": "1.2.abc"}, "UID"),
    ({"limit": "-1"}, "limit"),
    ({"offset": "x"}, "offset"),
    ({"includefield": "Bogus"}, "unknown attribute"),
    ({"fuzzymatching": "maybe"}, "fuzzymatching"),
])
def test_bad_parameters_are_400(client, tenant, token, studies, params, message):
    response = search(client, tenant, token, **params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_unsupported_matching_key_is_ignored_with_warning(client, tenant, token, studies):
    response = search(client, tenant, token, PatientComments="x")
    assert response.status_code == 200 and len(response.json()) == 4
    assert "PatientComments" in response.headers["Warning"]


def test_non_ascii_names(client, tenant, token):
    ingest_datasets(tenant, make_ct_series(1, 8, 8, patient_name="Müller^Jürgen", patient_id="DE1",
                                           charset="ISO_IR 192"))
    ingest_datasets(tenant, make_ct_series(1, 8, 8, patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう",
                                           patient_id="JP1", charset="ISO_IR 192"))
    for name in ("chrGerm.dcm", "chrH31.dcm", "chrRuss.dcm"):  # ISO_IR 100, ISO 2022 IR 87, ISO_IR 144
        ingest(tenant, Path(get_charset_files(name)[0]).read_bytes())
    [de] = search(client, tenant, token, PatientName="müller*").json()
    assert de["00100010"]["Value"][0]["Alphabetic"] == "Müller^Jürgen"
    [jp] = search(client, tenant, token, PatientName="山田*", PatientID="JP1").json()
    assert jp["00100010"]["Value"][0] == {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎",
                                          "Phonetic": "やまだ^たろう"}
    # The bundled ISO 2022 file has the same name in three groups: both match.
    assert len(search(client, tenant, token, PatientName="yamada^tarou").json()) == 2
    assert len(search(client, tenant, token, PatientName="やまだ^たろう").json()) == 2
    [germ] = search(client, tenant, token, PatientName="äneas*").json()
    assert germ["00100010"]["Value"][0]["Alphabetic"] == "Äneas^Rüdiger"
    [russ] = search(client, tenant, token, PatientName="люк*").json()
    assert russ["00100010"]["Value"][0]["Alphabetic"] == "Люкceмбypг"


def test_bundled_file_searchable(client, tenant, token):
    ingest(tenant, bundled("CT_small.dcm"))
    [item] = search(client, tenant, token, PatientName="CompressedSamples^CT1").json()
    assert item["00080061"]["Value"] == ["CT"]


def test_one_query_whatever_the_page_size(client, tenant, token):
    for i in range(12):
        ingest_datasets(tenant, make_ct_series(1, 8, 8, patient_id=f"Q{i}", study_date="20200101"))

    def count(**params):
        with CaptureQueriesContext(connection) as ctx:
            response = search(client, tenant, token, **params)
        assert response.status_code == 200
        return len(ctx.captured_queries), len(response.json())

    count(limit=1)  # warm-up: the token's last-used time is written on first use
    small, n_small = count(limit=2, includefield="all")
    large, n_large = count(limit=10, includefield="all")
    assert (n_small, n_large) == (2, 10)
    assert small == large  # no query per study
    series_small, _ = count(limit=1)
    series_large, _ = count(limit=10)
    assert series_small == series_large


def test_a_search_under_a_study_or_series_looks_its_parent_up_only_when_nothing_matched(
        client, tenant, token, studies):
    study = studies["smith"]
    series = search(client, tenant, token, f"studies/{study}/series").json()[0]["0020000E"]["Value"][0]

    def queries(rest, **params):
        with CaptureQueriesContext(connection) as ctx:
            response = search(client, tenant, token, rest, **params)
        return len(ctx.captured_queries), response

    # Under a study or series: as many queries as the same search across the clinic.
    for under, across, params, tag in (
            (f"studies/{study}/series", "series", {"StudyInstanceUID": study}, "0020000E"),
            (f"studies/{study}/series/{series}/instances", "instances",
             {"StudyInstanceUID": study, "SeriesInstanceUID": series}, "00080018")):
        (n_under, found), (n_across, same) = queries(under), queries(across, **params)
        assert uids(found, tag) and uids(found, tag) == uids(same, tag)
        assert n_under == n_across, under
    # Nothing matched: an empty list when the parent exists, 404 when it does not.
    assert search(client, tenant, token, f"studies/{study}/series", Modality="XA").json() == []
    assert search(client, tenant, token, f"studies/{study}/series/{series}/instances",
                  InstanceNumber="999").json() == []
    for rest in (f"studies/{study}.9/series", f"studies/{study}.9/instances",
                 f"studies/{study}/series/{series}.9/instances",
                 f"studies/{studies['doe']}/series/{series}/instances"):  # another study's series
        assert search(client, tenant, token, rest).status_code == 404, rest


def test_search_query_budget(client, tenant, token, studies, django_assert_max_num_queries):
    # Token lookup + touch, the search, and the audit event (lock, last, insert); savepoints.
    with django_assert_max_num_queries(12):
        assert search(client, tenant, token, PatientName="D*").status_code == 200


def test_search_is_audited_without_phi(client, tenant, token, studies):
    from tenants.audit import AuditEvent

    search(client, tenant, token, PatientName="Doe*")
    event = AuditEvent.objects.for_tenant(tenant).filter(action="dicomweb.search").get()
    assert event.detail == {"level": "study", "results": 2}
    assert "Doe" not in json.dumps(event.detail)


def test_other_clinic_and_scopes(client, tenant, other_tenant, token, make_token, studies):
    theirs = make_token(other_tenant, scopes=("read",))
    study = studies["doe"]
    for rest in ("studies", f"studies/{study}/series", f"studies/{study}/instances", "series", "instances"):
        assert client.get(url(tenant, rest), **bearer(theirs)).status_code == 404, rest
    # Their own clinic URL with our study UID: not found, never data.
    assert client.get(url(other_tenant, f"studies/{study}/series"), **bearer(theirs)).status_code == 404
    assert client.get(url(other_tenant, "studies"), {"StudyInstanceUID": study},
                      **bearer(theirs)).json() == []
    upload_only = make_token(tenant, scopes=("upload",))
    assert client.get(url(tenant, "studies"), **bearer(upload_only)).status_code == 403
    assert client.get(url(tenant, "studies")).status_code == 401
