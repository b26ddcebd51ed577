"""The worklist stays fast with 100,000 studies: proven by the shape of the work, not time.

For each common search, one page is ONE query (no COUNT, nothing per row), deep pages
cost what the first costs (keyset), and on PostgreSQL the plan reads an index, never a
sequential scan of the study table. On SQLite only the query counts are checked (its
planner is not what production runs). No timing assertions: timings live in bench/.
"""

from datetime import date

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from archive.models import Study
from archive.selectors.worklist import WorklistFilters, worklist_search
from tenants import roles
from tests.archive.study_rows import bulk_studies, make_study

N = 100_000

CASES = {
    "newest first": dict(),
    "name sort": dict(sort="name"),
    "received sort": dict(sort="created"),
    "rare name substring": dict(name="greta0061"),
    "two name words": dict(name="kowalski ida"),
    "common family name": dict(name="nguyen"),
    "patient id": dict(patient_id="BULK000123"),
    "accession": dict(accession="ACC00054321"),
    "date range": dict(date_from=date(2015, 3, 1), date_to=date(2015, 3, 31)),
    "modality": dict(modality="MG"),
    "referring physician": dict(referring="okafor"),
    "name + date range": dict(name="tanaka", date_from=date(2013, 1, 1), date_to=date(2013, 12, 31)),
}


def run(tenant, case: dict, after=None):
    case = dict(case)
    sort = case.pop("sort", "date")
    with CaptureQueriesContext(connection) as queries:
        page = worklist_search(tenant=tenant, filters=WorklistFilters(**case), sort=sort, after=after)
    return page, [q["sql"] for q in queries]


def plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def make_big_clinic(tenant, other_tenant):
    bulk_studies(tenant, N)
    make_study(other_tenant, name="KOWALSKI^IDA", patient_id="BULK000123", accession="ACC00054321")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE archive_study")


# One test, not three: filling 100,000 rows is the expensive part, done once.
def test_worklist_with_100k_studies(tenant, other_tenant, client, login, make_member):
    make_big_clinic(tenant, other_tenant)
    assert Study.objects.for_tenant(tenant).count() == N
    check_common_searches(tenant)
    check_deep_page(tenant)
    check_page_view(tenant, client, login, make_member)


def check_common_searches(clinic):
    problems = []
    for label, case in CASES.items():
        page, sqls = run(clinic, case)
        if not page.studies:
            problems.append(f"{label}: no results, the case tests nothing")
        if len(sqls) != 1 or "COUNT(" in sqls[0].upper():
            problems.append(f"{label}: {len(sqls)} queries: {sqls}")
            continue
        if page.next_after is not None:  # the next page: keyset from inside the results
            deep, deep_sqls = run(clinic, case, after=page.next_after)
            if len(deep_sqls) != 1 or not deep.studies:
                problems.append(f"{label} page 2: {len(deep_sqls)} queries, {len(deep.studies)} rows")
            sqls += deep_sqls
        if connection.vendor == "postgresql":
            for sql in sqls:
                text = plan(sql)
                if "Seq Scan on archive_study" in text or "Index" not in text:
                    problems.append(f"{label}: not an index plan:\n{text}")
    assert not problems, "\n\n".join(problems)


def check_deep_page(clinic):
    # The cursor of a study far down the list: no OFFSET walks the rows before it.
    middle = (Study.objects.for_tenant(clinic).order_by("-study_date", "-pk")
              .values_list("pk", flat=True)[60_000])
    page, sqls = run(clinic, {}, after=middle)
    assert len(page.studies) == 50 and len(sqls) == 1 and "OFFSET" not in sqls[0].upper()
    if connection.vendor == "postgresql":
        assert "Seq Scan on archive_study" not in plan(sqls[0])


def check_page_view(clinic, client, login, make_member):
    login(make_member(clinic, roles.VIEWER))
    worklist = reverse("archive:worklist", kwargs={"tenant_slug": clinic.slug})
    location = client.post(worklist, {"name": "kowalski"})["Location"]
    with CaptureQueriesContext(connection) as queries:
        response = client.get(location)
    assert response.status_code == 200 and response.content.decode().count('<td class="patient">') == 50
    study_sqls = [q["sql"] for q in queries if "archive_study" in q["sql"]]
    assert len(study_sqls) == 1
