"""Clinic API views: search studies, read one study with its series, read its storage state.

The middleware has resolved the clinic and the principal (member session or API token);
these views check the permission, call one selector and shape the answer. Another
clinic's study id is a 404, like a study that does not exist.
"""

from django.utils.http import urlencode
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from archive.api import schema  # noqa: F401 - registers the OpenAPI auth extension
from archive.api.serializers import (
    ErrorSerializer,
    StorageStateSerializer,
    StudyDetailSerializer,
    StudyPageSerializer,
    StudySearchPageSerializer,
    StudySearchSerializer,
)
from archive.errors import StudyNotFound
from archive.models import Study
from archive.selectors.studies import study_get, study_series, study_storage_state
from archive.selectors.worklist import WorklistError, WorklistFilters, WorklistPage, worklist_search
from tenants.api_auth import HasTenantPerm
from tenants.phi_audit import audits_phi_read, phi_read

TENANT_SLUG = OpenApiParameter("tenant_slug", OpenApiTypes.STR, OpenApiParameter.PATH,
                               description="The clinic's slug, as in /t/<slug>/.")
# drf-spectacular names `pk` path parameters `id` (SCHEMA_COERCE_PATH_PK).
STUDY_PK = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH,
                            description="The study's id in this clinic (`id` in study lists).")
FILTER_FIELDS = set(WorklistFilters.__dataclass_fields__)
ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="No or an invalid credential."),
    403: OpenApiResponse(ErrorSerializer, description="The credential lacks archive.view (e.g. an upload-only token)."),
}
NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="No such study in this clinic.")}


class ClinicAPIView(APIView):
    permission_classes = [HasTenantPerm.of("archive.view")]

    def get_study(self, pk: int) -> Study:
        try:
            return study_get(tenant=self.request.tenant, pk=pk)
        except StudyNotFound:
            raise NotFound("No such study.") from None


class StudySearchBase(ClinicAPIView):
    """What the GET and POST study searches share."""

    def search(self, request: Request, params: dict, via: str) -> WorklistPage:
        incoming = StudySearchSerializer(data=params)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        filters = WorklistFilters(**{k: v for k, v in data.items() if k in FILTER_FIELDS})
        try:
            page = worklist_search(tenant=request.tenant, filters=filters, sort=data["sort"],
                                   after=data.get("after"), limit=data["limit"])
        except WorklistError as error:
            raise ValidationError({"detail": str(error)}) from None
        # The list shows patients' names: reading it is a PHI access.
        phi_read(request, action="worklist.viewed", obj_type="worklist",
                 detail={"via": via, "filters": filters.active(), "sort": page.sort,
                         "after": data.get("after"), "shown": len(page.studies)})
        return page


BAD_FILTER = {400: OpenApiResponse(description="A filter is invalid: field name -> messages.")}


@extend_schema(tags=["studies"])
class StudyListView(StudySearchBase):
    @extend_schema(
        operation_id="studies_search",
        summary="Search the clinic's studies",
        description=("The worklist's search: filters combine with AND. Pages follow each other by "
                     "keyset (`next`), so any page is as fast as the first; there is no total count. "
                     "Query strings end up in proxy and server logs: to search by patient name or ID "
                     "without putting them in a URL, POST the same fields to `studies/search/`."),
        parameters=[TENANT_SLUG, StudySearchSerializer],
        responses={200: StudyPageSerializer, **BAD_FILTER, **ERRORS},
    )
    @audits_phi_read
    def get(self, request: Request) -> Response:
        page = self.search(request, request.query_params, "api")
        next_url = None
        if page.next_after is not None:
            query = {k: v for k, v in request.query_params.items() if k != "after"}
            next_url = request.build_absolute_uri(f"{request.path}?{urlencode({**query, 'after': page.next_after})}")
        body = StudyPageSerializer({"results": page.studies, "next": next_url, "next_after": page.next_after},
                                   context={"request": request})
        return Response(body.data)


@extend_schema(tags=["studies"])
class StudySearchView(StudySearchBase):
    @extend_schema(
        operation_id="studies_search_post",
        summary="Search the clinic's studies, filters in the body",
        description=("Same as `GET studies/`, with the filters as a JSON body so that no patient name "
                     "or ID appears in a URL. For the next page, post again with `after` = `next_after`. "
                     "Reads only; a member's browser session needs the CSRF token as for any POST."),
        parameters=[TENANT_SLUG],
        request=StudySearchSerializer,
        responses={200: StudySearchPageSerializer, **BAD_FILTER, **ERRORS},
    )
    @audits_phi_read
    def post(self, request: Request) -> Response:
        page = self.search(request, request.data, "api")
        body = StudySearchPageSerializer({"results": page.studies, "next_after": page.next_after},
                                         context={"request": request})
        return Response(body.data)


@extend_schema(tags=["studies"])
class StudyDetailView(ClinicAPIView):
    @extend_schema(operation_id="studies_retrieve", summary="A study with its series",
                   description="Reading a study is a PHI access and is recorded in the audit log.",
                   parameters=[TENANT_SLUG, STUDY_PK], responses={200: StudyDetailSerializer, **ERRORS, **NOT_FOUND})
    @audits_phi_read
    def get(self, request: Request, pk: int) -> Response:
        study = self.get_study(pk)
        study.series_list = list(study_series(study=study))
        phi_read(request, action="study.viewed", obj_type="study", obj_id=study.pk,
                 detail={"via": "api", "study_uid": study.study_instance_uid})
        return Response(StudyDetailSerializer(study, context={"request": request}).data)


@extend_schema(tags=["studies"])
class StudyStorageView(ClinicAPIView):
    @extend_schema(operation_id="studies_storage", summary="Where the study's copies are",
                   description="Archive progress of the study's instances, per region where reported.",
                   parameters=[TENANT_SLUG, STUDY_PK], responses={200: StorageStateSerializer, **ERRORS, **NOT_FOUND})
    def get(self, request: Request, pk: int) -> Response:
        study = self.get_study(pk)
        return Response(StorageStateSerializer(study_storage_state(study=study)).data)

