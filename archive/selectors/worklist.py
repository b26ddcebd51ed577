"""The worklist query: one clinic's studies, filtered, sorted, one page at a time.

Shared by the worklist page and the REST API. It must stay fast with 100,000 studies:

- one SQL query per page: no COUNT(*) (the page asks for one row more than it shows to
  know whether there is a next page) and no per-row queries (patient attributes are
  copied onto Study, so nothing is joined);
- keyset pagination: the cursor is the pk of the last row shown, and the page's query
  seeks to that row's sort key through a sub-select, so page 2,000 costs what page 1
  costs, and the cursor carries no patient data into the URL (a name cursor would);
- every sort walks a (tenant, key, id) b-tree index; the exact-match filters have
  their own (tenant, column) indexes; name and referring-physician substring searches
  use pg_trgm GIN indexes on PostgreSQL (migration 0002; SQLite scans, which is fine
  for the embedded single-clinic mode).
"""

import re
from dataclasses import asdict, dataclass
from datetime import date

from django.db.models import F, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from archive.models import Study

UNREAD = "unread"  # a study with no report row (archive/reports/models.py)
READ_STATUSES = (UNREAD, "draft", "final")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_NAME_TERMS = 4

# sort name -> (column, descending). The pk breaks ties so that the order is total.
SORTS: dict[str, tuple[str, bool]] = {
    "date": ("study_date", True),  # newest study first; studies without a date last
    "name": ("patient_name_search", False),  # A..Z by family name, as DICOM writes it
    "created": ("created_at", True),  # most recently received first
}
DEFAULT_SORT = "date"
MODALITY_RE = re.compile(r"^[A-Z0-9]{1,16}$")


class WorklistError(ValueError):
    """A filter the worklist cannot apply (the message is shown to the user)."""


@dataclass(frozen=True)
class WorklistFilters:
    name: str = ""  # every word must appear in the patient's name, any case
    patient_id: str = ""  # exact PatientID
    date_from: date | None = None  # study date, inclusive
    date_to: date | None = None  # study date, inclusive
    modality: str = ""  # one modality in the study (CT, MR...)
    accession: str = ""  # exact accession number
    referring: str = ""  # substring of the referring physician's name, any case
    read_status: str = ""  # unread, draft or final (archive/reports/)
    assigned_to: int | None = None  # the user a study is assigned to for reading

    def active(self) -> dict[str, str]:
        """The filters in effect, as strings (for links and the audit log)."""
        return {k: str(v) for k, v in asdict(self).items() if v not in ("", None)}


@dataclass
class WorklistPage:
    studies: list[Study]
    next_after: int | None  # cursor for the next page, None on the last page
    sort: str
    limit: int


def name_terms(name: str) -> list[str]:
    """Words of a name search, upper-cased like Study.patient_name_search.

    "jane doe", "Doe^Jane" and "DOE, JANE" all give [DOE/JANE] terms in some order;
    each must appear somewhere in the name, so word order does not matter."""
    return [t for t in re.split(r"[\s^,]+", name.strip().upper()) if t]


def _dicom_date(value: date) -> str:
    return value.strftime("%Y%m%d")


def _filtered(qs: QuerySet, f: WorklistFilters) -> QuerySet:
    terms = name_terms(f.name)
    if len(terms) > MAX_NAME_TERMS:
        raise WorklistError(f"Search a name with at most {MAX_NAME_TERMS} words.")
    for term in terms:
        qs = qs.filter(patient_name_search__contains=term)
    if f.patient_id:
        qs = qs.filter(patient_identifier=f.patient_id.strip())
    if f.accession:
        qs = qs.filter(accession_number=f.accession.strip())
    if f.date_from and f.date_to and f.date_from > f.date_to:
        raise WorklistError("The start date is after the end date.")
    if f.date_from:
        qs = qs.filter(study_date__gte=_dicom_date(f.date_from))
    if f.date_to:
        # Studies without a date ("" sorts first) are not "before" any date.
        qs = qs.filter(study_date__lte=_dicom_date(f.date_to)).exclude(study_date="")
    if f.modality:
        m = f.modality.strip().upper()
        if not MODALITY_RE.match(m):
            raise WorklistError("A modality is a short code such as CT, MR or US.")
        # Study.modalities is backslash-joined ("CT\SR"): match a whole element.
        qs = qs.filter(Q(modalities=m) | Q(modalities__startswith=m + "\\")
                       | Q(modalities__endswith="\\" + m) | Q(modalities__contains="\\" + m + "\\"))
    if f.referring.strip():
        qs = qs.filter(referring_physician_name__icontains=f.referring.strip())
    if f.read_status:
        if f.read_status not in READ_STATUSES:
            raise WorklistError(f"Read status is one of: {', '.join(READ_STATUSES)}.")
        qs = qs.filter(read_state=f.read_status)
    if f.assigned_to is not None:
        qs = qs.filter(report__assigned_to=f.assigned_to)
    return qs


def _after(qs: QuerySet, *, tenant, key: str, descending: bool, after: int) -> QuerySet:
    """Rows strictly after the cursor row in (key, pk) order, in the same query.

    Written as `key <= v AND (key < v OR pk < after)` rather than an OR alone so that
    `key <= v` is an index condition the database can seek to. A cursor naming another
    clinic's study (or none) selects NULL, and the page is empty."""
    value = Subquery(Study.objects.for_tenant(tenant).filter(pk=after).values(key)[:1])
    if descending:
        return qs.filter(**{f"{key}__lte": value}).filter(Q(**{f"{key}__lt": value}) | Q(pk__lt=after))
    return qs.filter(**{f"{key}__gte": value}).filter(Q(**{f"{key}__gt": value}) | Q(pk__gt=after))


def with_read_status(studies: QuerySet) -> QuerySet:
    """Each study's read status and reader, from its report row if it has one (a LEFT
    JOIN on a unique key: still one query per page)."""
    return studies.annotate(read_state=Coalesce(F("report__state"), Value(UNREAD)),
                            reader_email=F("report__assigned_to__email"))


def worklist_search(*, tenant, filters: WorklistFilters | None = None, sort: str = DEFAULT_SORT,
                    after: int | None = None, limit: int = PAGE_SIZE) -> WorklistPage:
    """One page of the clinic's studies matching `filters`, in `sort` order.

    Raises WorklistError for a filter that cannot be applied."""
    if sort not in SORTS:
        raise WorklistError(f"Sort by one of: {', '.join(SORTS)}.")
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    key, descending = SORTS[sort]
    qs = _filtered(with_read_status(Study.objects.for_tenant(tenant)), filters or WorklistFilters())
    if after is not None:
        qs = _after(qs, tenant=tenant, key=key, descending=descending, after=after)
    order = [f"-{key}", "-pk"] if descending else [key, "pk"]
    rows = list(qs.order_by(*order)[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    return WorklistPage(studies=rows, next_after=rows[-1].pk if has_more else None, sort=sort, limit=limit)


def display_name(dicom_name: str) -> str:
    """"DOE^JANE^^DR" -> "DOE, JANE DR": how people read a DICOM person name.

    Only the first (alphabetic) component group is shown; ideographic and phonetic
    groups after "=" stay in the raw attribute."""
    family, _, rest = dicom_name.split("=")[0].partition("^")
    given = " ".join(p for p in rest.split("^") if p)
    return f"{family}, {given}" if family and given else (family or given)


def dicom_date_display(value: str) -> str:
    """"20240131" -> "2024-01-31"; anything else unchanged (DICOM dates may be partial)."""
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value
