"""Attribute searches of the study index (PS3.4 C.2.2.2 matching, via archive.query):
QIDO-RS today, C-FIND next, one model and one matcher for both.

A search is one SQL query, which asks for one row more than the page to tell whether
there are more (PS3.18's warning says only that there are, so no COUNT over every match
is needed); attributes that are not columns come from one representative instance's
stored header, fetched by a subquery in that same statement.
"""

from dataclasses import dataclass, field

from django.db.models import JSONField, OuterRef, Q, QuerySet, Subquery

from archive.models import Instance, Series, Study
from archive.query.attributes import SERIES, STUDY
from archive.query.matching import attr_q
from archive.query.search import SearchQuery
from archive.selectors.studies import series_get, study_get

PREFIX = {
    STUDY: {STUDY: ""},
    SERIES: {STUDY: "study__", SERIES: ""},
    "instance": {STUDY: "study__", SERIES: "series__", "instance": ""},
}


@dataclass
class SearchPage:
    rows: list = field(default_factory=list)
    more: bool = False  # there are matches beyond this page


def _filters(query: SearchQuery) -> Q:
    q = Q()
    for attr, value in query.filters:
        q &= attr_q(attr, value, prefix=PREFIX[query.level][attr.level], fuzzy=query.fuzzy)
    return q


def _page(qs: QuerySet, query: SearchQuery) -> SearchPage:
    start, stop = query.offset, query.offset + query.limit
    rows = list(qs[start:stop + 1])
    return SearchPage(rows=rows[:query.limit], more=len(rows) > query.limit)


def _representative(tenant, **outer) -> Subquery:
    """The header of the first stored instance of the outer row's study or series."""
    inner = (Instance.objects.for_tenant(tenant).filter(**{k: OuterRef(v) for k, v in outer.items()})
             .order_by("pk").values("metadata")[:1])
    return Subquery(inner, output_field=JSONField())


def _within(qs: QuerySet, within: frozenset | None, prefix: str = "") -> QuerySet:
    """Only these studies (a share's), when given; None is the whole clinic."""
    return qs if within is None else qs.filter(**{f"{prefix}study_instance_uid__in": within})


def study_search(*, tenant, query: SearchQuery, within: frozenset | None = None) -> SearchPage:
    qs = _within(Study.objects.for_tenant(tenant), within).filter(_filters(query))
    if query.needs_metadata:
        qs = qs.annotate(rep_metadata=_representative(tenant, study="pk"))
    return _page(qs.order_by("-study_date", "-study_time", "-pk"), query)


def series_search(*, tenant, query: SearchQuery, study_uid: str | None = None,
                  within: frozenset | None = None) -> SearchPage:
    qs = _within(Series.objects.for_tenant(tenant), within, "study__").select_related("study").filter(_filters(query))
    if study_uid is not None:
        qs = qs.filter(study__study_instance_uid=study_uid)
    if query.needs_metadata:
        qs = qs.annotate(rep_metadata=_representative(tenant, series="pk"))
    page = _page(qs.order_by("study_id", "series_number", "pk"), query)
    if not page.rows and study_uid is not None:
        study_get(tenant=tenant, study_uid=study_uid)  # no such study: 404, not an empty list
    return page


def instance_search(*, tenant, query: SearchQuery, study_uid: str | None = None,
                    series_uid: str | None = None, within: frozenset | None = None) -> SearchPage:
    qs = (_within(Instance.objects.for_tenant(tenant), within, "study__").select_related("study", "series")
          .filter(_filters(query)))
    if series_uid is not None:
        qs = qs.filter(series__series_instance_uid=series_uid, study__study_instance_uid=study_uid or "")
    elif study_uid is not None:
        qs = qs.filter(study__study_instance_uid=study_uid)
    page = _page(qs.order_by("study_id", "series_id", "instance_number", "pk"), query)
    # The parent is looked up only when nothing matched (one query less for every search
    # under a study or series): no such study or series is a 404, not an empty list.
    if not page.rows and series_uid is not None:
        series_get(tenant=tenant, study_uid=study_uid or "", series_uid=series_uid)
    elif not page.rows and study_uid is not None:
        study_get(tenant=tenant, study_uid=study_uid)
    return page
