"""archive.selectors.worklist.worklist_search: filters, sorts, keyset pages, clinic scoping."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from archive.selectors.worklist import (
    WorklistError,
    WorklistFilters,
    display_name,
    name_terms,
    worklist_search,
)
from tests.archive.study_rows import make_study


def search(tenant, **kwargs):
    sort = kwargs.pop("sort", "date")
    after = kwargs.pop("after", None)
    limit = kwargs.pop("limit", 50)
    return worklist_search(tenant=tenant, filters=WorklistFilters(**kwargs), sort=sort, after=after, limit=limit)


def pks(page) -> list[int]:
    return [s.pk for s in page.studies]


def test_name_search_any_case_any_order_substring(tenant):
    jane = make_study(tenant, name="Doe^Jane", patient_id="P1")
    john = make_study(tenant, name="Doe^John", patient_id="P2")
    make_study(tenant, name="Roe^Richard", patient_id="P3")
    muller = make_study(tenant, name="Müller^Jürgen", patient_id="P4")
    assert set(pks(search(tenant, name="doe"))) == {jane.pk, john.pk}
    assert pks(search(tenant, name="jane doe")) == [jane.pk]
    assert pks(search(tenant, name="DOE, JAN")) == [jane.pk]
    assert pks(search(tenant, name="oh")) == [john.pk]  # substring, not only prefix
    assert pks(search(tenant, name="müll")) == [muller.pk]  # non-ASCII upper-cased like the index
    assert pks(search(tenant, name="doe roe")) == []


def test_exact_and_substring_filters(tenant):
    a = make_study(tenant, patient_id="MRN-1", accession="A100", referring="House^Gregory")
    b = make_study(tenant, patient_id="MRN-10", accession="A1000", referring="Wilson^James")
    assert pks(search(tenant, patient_id="MRN-1")) == [a.pk]  # exact: MRN-10 does not match
    assert pks(search(tenant, accession="A1000")) == [b.pk]
    assert pks(search(tenant, referring="house")) == [a.pk]
    assert pks(search(tenant, referring="SON^JA")) == [b.pk]


def test_modality_matches_a_whole_element(tenant):
    ct = make_study(tenant, patient_id="1", modalities="CT")
    pet_ct = make_study(tenant, patient_id="2", modalities="PT\\CT")
    cr_sr = make_study(tenant, patient_id="3", modalities="CR\\SR\\KO")
    make_study(tenant, patient_id="4", modalities="CTX")  # not CT
    assert set(pks(search(tenant, modality="ct"))) == {ct.pk, pet_ct.pk}
    assert pks(search(tenant, modality="SR")) == [cr_sr.pk]
    assert pks(search(tenant, modality="KO")) == [cr_sr.pk]
    with pytest.raises(WorklistError):
        search(tenant, modality="C%")


def test_date_range_is_inclusive_and_skips_undated(tenant):
    jan = make_study(tenant, patient_id="1", study_date="20240101")
    feb = make_study(tenant, patient_id="2", study_date="20240215")
    make_study(tenant, patient_id="3", study_date="")
    assert pks(search(tenant, date_from=date(2024, 1, 1), date_to=date(2024, 1, 31))) == [jan.pk]
    assert pks(search(tenant, date_to=date(2024, 2, 15))) == [feb.pk, jan.pk]
    assert pks(search(tenant, date_from=date(2024, 2, 1))) == [feb.pk]
    with pytest.raises(WorklistError):
        search(tenant, date_from=date(2024, 2, 1), date_to=date(2024, 1, 1))


def test_sorts(tenant):
    now = timezone.now()
    b = make_study(tenant, name="B^X", patient_id="1", study_date="20230101", created_at=now)
    a = make_study(tenant, name="A^X", patient_id="2", study_date="20240101", created_at=now - timedelta(hours=1))
    undated = make_study(tenant, name="C^X", patient_id="3", study_date="", created_at=now - timedelta(hours=2))
    assert pks(search(tenant, sort="date")) == [a.pk, b.pk, undated.pk]
    assert pks(search(tenant, sort="name")) == [a.pk, b.pk, undated.pk]
    assert pks(search(tenant, sort="created")) == [b.pk, a.pk, undated.pk]
    with pytest.raises(WorklistError):
        search(tenant, sort="patient_name")


@pytest.mark.parametrize("sort", ["date", "name", "created"])
def test_keyset_pages_walk_everything_once_with_ties(tenant, sort):
    # Many equal sort keys (same date, same name, same created_at): the pk breaks ties.
    same_time = timezone.now()
    studies = [make_study(tenant, name=f"SAME^{i % 2}", patient_id=str(i % 3), study_date="20240101",
                          created_at=same_time) for i in range(11)]
    seen, after = [], None
    for _ in range(10):
        page = search(tenant, sort=sort, after=after, limit=3)
        seen += pks(page)
        after = page.next_after
        if after is None:
            break
    assert sorted(seen) == sorted(s.pk for s in studies) and len(seen) == len(set(seen))
    assert seen == pks(search(tenant, sort=sort, limit=50))  # same order as one big page


def test_keyset_with_filter(tenant):
    matching = [make_study(tenant, name=f"DOE^{i}", patient_id=str(i), study_date=f"202401{i + 10:02d}")
                for i in range(5)]
    for i in range(5):
        make_study(tenant, name=f"ROE^{i}", patient_id=f"r{i}", study_date=f"202401{i + 10:02d}")
    first = search(tenant, name="doe", limit=2)
    second = search(tenant, name="doe", limit=2, after=first.next_after)
    third = search(tenant, name="doe", limit=2, after=second.next_after)
    assert pks(first) + pks(second) + pks(third) == [s.pk for s in reversed(matching)]
    assert third.next_after is None


def test_only_the_clinics_studies(tenant, other_tenant):
    mine = make_study(tenant, name="Doe^Jane")
    theirs = make_study(other_tenant, name="Doe^Jane")
    assert pks(search(tenant)) == [mine.pk]
    assert pks(search(tenant, name="doe")) == [mine.pk]
    # Another clinic's pk as the cursor selects nothing (and reveals nothing).
    assert pks(search(tenant, after=theirs.pk)) == []


def test_limit_is_bounded(tenant):
    for i in range(3):
        make_study(tenant, patient_id=str(i))
    assert len(search(tenant, limit=0).studies) == 1
    assert search(tenant, limit=10_000).limit == 200


def test_name_helpers():
    assert name_terms("  doe, jane^^ ") == ["DOE", "JANE"]
    assert display_name("DOE^JANE^^DR") == "DOE, JANE DR"
    assert display_name("Yamada^Tarou=山田^太郎") == "Yamada, Tarou"
    assert display_name("SINGLE") == "SINGLE"


def test_too_many_name_words_refused(tenant):
    with pytest.raises(WorklistError):
        search(tenant, name="a b c d e")
