"""The upload page and the JSON endpoints it calls besides tus: batches and ingest."""

from collections import Counter

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from archive.models import Study
from archive.selectors.worklist import dicom_date_display, display_name
from archive.upload.ingest import upload_ingest
from archive.upload.store import (
    Busy,
    batch_add,
    batch_create,
    batch_exists,
    batch_pop,
    principal_key,
    upload_claimed,
    upload_get,
)
from archive.views.admission import uploads_admitted
from tenants.audit import audit_record
from tenants.decorators import require_perm

LINKS_SHOWN = 100  # a CD of a hundred studies lists them all; more are in the worklist


@require_GET
@require_perm("archive.upload")
def upload_page(request):
    return render(request, "archive/upload.html", {
        "max_bytes": settings.UPLOAD_MAX_BYTES,
        "chunk_bytes": 8 * 1024 * 1024,
    })


@require_POST
@require_perm("archive.upload")
@uploads_admitted
def batch_start(request):
    batch_id = batch_create(tenant=request.tenant, owner=principal_key(request.principal))
    return JsonResponse({"batch": batch_id}, status=201)


@require_POST
@require_perm("archive.upload")
@uploads_admitted
def upload_finish(request, upload_id: str):
    """Ingest a complete upload; answers the per-file results (and keeps them for the batch)."""
    owner = principal_key(request.principal)
    upload = upload_get(tenant=request.tenant, upload_id=upload_id, owner=owner)
    if upload is None:
        return JsonResponse({"error": "no such upload"}, status=404)
    if not upload.complete:
        return JsonResponse({"error": f"the upload is incomplete ({upload.offset} of "
                                      f"{upload.length} bytes)"}, status=409)
    name = upload.metadata.get("filename") or "file"
    try:
        with upload_claimed(upload) as path:
            results = upload_ingest(tenant=request.tenant, path=path, name=name,
                                    actor=request.principal.actor(request))
    except Busy:
        return JsonResponse({"error": "this upload is being processed already"}, status=409)
    batch = upload.metadata.get("batch", "")
    if batch and batch_exists(tenant=request.tenant, batch_id=batch, owner=owner):
        batch_add(tenant=request.tenant, batch_id=batch, results=results)
    return JsonResponse({"files": results})


@require_POST
@require_perm("archive.upload")
def batch_finish(request, batch_id: str):
    """Close a batch: one audit event for everything uploaded in it, and the summary."""
    if not batch_exists(tenant=request.tenant, batch_id=batch_id,
                        owner=principal_key(request.principal)):
        return JsonResponse({"error": "no such batch"}, status=404)
    results = batch_pop(tenant=request.tenant, batch_id=batch_id)
    counts = Counter(r["status"] for r in results)
    studies = sorted({r["study_uid"] for r in results if r.get("study_uid")})
    summary = {"stored": counts["stored"], "already_present": counts["already_present"],
               "rejected": counts["rejected"], "skipped": counts["skipped"]}
    # Counts and study UIDs only: file names may carry patient names.
    audit_record(tenant=request.tenant, actor=request.principal.actor(request),
                 action="upload.batch", obj_type="study",
                 obj_id=studies[0] if len(studies) == 1 else "",
                 detail={**summary, "studies": studies[:100]})
    return JsonResponse({**summary, "studies": len(studies),
                         "study_links": _study_links(request, studies)})


def _study_links(request, study_uids: list[str]) -> list[dict]:
    """A link to each study the batch made or added to, for whoever may open it (an
    upload-only token gets none): name, date and description, as the worklist shows them."""
    if not request.principal.can("archive.view") or not study_uids:
        return []
    rows = (Study.objects.for_tenant(request.tenant).filter(study_instance_uid__in=study_uids[:LINKS_SHOWN])
            .order_by("patient_name", "study_date", "pk"))
    return [{"url": reverse("archive:study", kwargs={"tenant_slug": request.tenant.slug, "pk": s.pk}),
             "name": display_name(s.patient_name) or "(no name)", "date": dicom_date_display(s.study_date),
             "description": s.study_description} for s in rows]
