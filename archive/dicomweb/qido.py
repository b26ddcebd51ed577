"""QIDO-RS (PS3.18 10.6): search for studies, series and instances.

Results are `application/dicom+json`. No match is 200 with `[]`: PS3.18 8.3.4.4.1 still
says 204, but CP-2473 corrects that to 200 (RFC 9110: a 204 carries no content), and
clients (dicomweb-client, OHIF) accept both.
"""

import json

from django.http import HttpResponse
from django.views.decorators.gzip import gzip_page

from archive.dicomweb.common import DICOM_JSON, dicomweb_root, error
from archive.dicomweb.json import result_json
from archive.dicomweb.query import parse_query
from archive.errors import NotFound
from archive.query.attributes import INSTANCE, REQUIRED, SERIES, STUDY, VISIBLE
from archive.query.matching import BadQuery
from archive.query.search import MAX_LIMIT, SearchQuery
from archive.selectors import search
from tenants.decorators import require_perm
from tenants.phi_audit import audits_phi_read, phi_read


def _retrieve_url(root: str, level: str, row) -> str:
    if level == STUDY:
        return f"{root}/studies/{row.study_instance_uid}"
    study = row.study.study_instance_uid
    if level == SERIES:
        return f"{root}/studies/{study}/series/{row.series_instance_uid}"
    return (f"{root}/studies/{study}/series/{row.series.series_instance_uid}"
            f"/instances/{row.sop_instance_uid}")


def _warnings(request, query: SearchQuery, more: bool) -> list[str]:
    host = request.get_host()
    out = []
    if query.limit_clamped:
        out.append(f'299 {host} "The limit was reduced to the maximum of {MAX_LIMIT} results"')
    if more:
        out.append(f'299 {host} "There are additional results that can be requested"')  # PS3.18
    if query.unsupported:
        out.append(f'299 {host} "The following attributes are not supported as matching keys '
                   f'and were ignored: {", ".join(query.unsupported)}"')
    return out


def _search(request, level: str, parent_levels: tuple[str, ...], **scope) -> HttpResponse:
    try:
        query = parse_query(request.GET, level)
        run = {STUDY: search.study_search, SERIES: search.series_search,
               INSTANCE: search.instance_search}[level]
        # A share's principal reads only its studies; a member or token, the whole clinic.
        page = run(tenant=request.tenant, query=query, within=request.principal.study_uids, **scope)
    except BadQuery as exc:
        return error(400, str(exc))
    except NotFound as exc:
        return error(404, str(exc))
    # A search under a study (or series) returns that level's attributes only; a search
    # across the clinic returns the parents' attributes too (PS3.18 10.6.3.3).
    levels = [lvl for lvl in VISIBLE[level] if lvl not in parent_levels]
    tags = [t for lvl in levels for t in REQUIRED[lvl]] + sorted(query.include)
    root = dicomweb_root(request)
    results = [result_json(row, level=level, tags=tags, include_all=query.include_all,
                           retrieve_url=_retrieve_url(root, level, row)) for row in page.rows]
    deid = getattr(request, "deidentifier", None)
    if deid is not None:  # a de-identified share (archive/sharing/deidentify.py)
        # In pseudonym order: the usual newest-first would tell the studies' real dates apart.
        results = sorted((deid.json(r) for r in results), key=lambda r: str(r.get("0020000D", {}).get("Value")))
    phi_read(request, action="dicomweb.search", obj_type="dicomweb", obj_id="",
             detail={"level": level, "results": len(results)})
    response = HttpResponse(json.dumps(results, ensure_ascii=False, separators=(",", ":")),
                            content_type=f"{DICOM_JSON}; charset=utf-8")
    warnings = _warnings(request, query, page.more)
    if warnings:
        response["Warning"] = ", ".join(warnings)
    return response


@gzip_page  # DICOM JSON compresses many times over (see wado.metadata)
@require_perm("archive.view")
@audits_phi_read
def search_studies(request):
    return _search(request, STUDY, ())


@gzip_page  # DICOM JSON compresses many times over (see wado.metadata)
@require_perm("archive.view")
@audits_phi_read
def search_series(request, study_uid: str | None = None):
    if study_uid is None:
        return _search(request, SERIES, ())
    return _search(request, SERIES, (STUDY,), study_uid=study_uid)


@gzip_page  # DICOM JSON compresses many times over (see wado.metadata)
@require_perm("archive.view")
@audits_phi_read
def search_instances(request, study_uid: str | None = None, series_uid: str | None = None):
    if series_uid is not None:
        return _search(request, INSTANCE, (STUDY, SERIES), study_uid=study_uid, series_uid=series_uid)
    if study_uid is not None:
        return _search(request, INSTANCE, (STUDY,), study_uid=study_uid)
    return _search(request, INSTANCE, ())
