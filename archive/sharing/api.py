"""The clinic API for share links: create one for a study (by StudyInstanceUID), list
them, read one, revoke one. For a member's session or an API token with scope `share`."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from archive.api import schema  # noqa: F401 - registers the OpenAPI auth extension
from archive.api.serializers import ErrorSerializer
from archive.errors import StudyNotFound
from archive.selectors.studies import study_get
from archive.sharing import services
from archive.sharing.forms import new_access_code
from archive.sharing.models import Share
from archive.sharing.views import link_url
from archive.uids import is_valid_uid
from tenants.api_auth import HasTenantPerm
from tenants.phi_audit import audits_phi_read, phi_read

TENANT_SLUG = OpenApiParameter("tenant_slug", OpenApiTypes.STR, OpenApiParameter.PATH,
                               description="The clinic's slug, as in /t/<slug>/.")
SHARE_ID = OpenApiParameter("share_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The share's id.")
ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="No or an invalid credential."),
    403: OpenApiResponse(ErrorSerializer, description="The credential lacks archive.share (token scope `share`)."),
}


class ShareCreateSerializer(serializers.Serializer):
    study_instance_uid = serializers.CharField(max_length=64)
    whole_patient = serializers.BooleanField(default=False, help_text="Share every study of the study's patient.")
    expires_in_days = serializers.IntegerField(required=False, min_value=1,
                                               help_text="Default SHARE_DEFAULT_DAYS (30).")
    access = serializers.ChoiceField(choices=[c for c, _ in Share.ACCESS_CHOICES], required=False,
                                     help_text="code (the default: one is made when access_code is empty), "
                                               "birth_date, or none (the link alone opens it).")
    access_code = serializers.CharField(required=False, allow_blank=True, max_length=64)
    allow_download = serializers.BooleanField(default=False)
    deidentify = serializers.BooleanField(default=False, help_text="Serve a de-identified copy (PS3.15 Basic Profile).")
    recipient_name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    recipient_email = serializers.EmailField(required=False, allow_blank=True)
    message = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    def validate_study_instance_uid(self, value):
        if not is_valid_uid(value):
            raise serializers.ValidationError("Not a valid UID.")
        return value


class ShareSerializer(serializers.ModelSerializer):
    studies = serializers.SerializerMethodField(help_text="StudyInstanceUIDs of the shared studies.")
    status = serializers.CharField(read_only=True)

    class Meta:
        model = Share
        fields = ["id", "studies", "access", "allow_download", "deidentify", "burned_in_risk", "recipient_name", "recipient_email",
                  "created_at", "created_by_label", "expires_at", "revoked_at", "status", "opened_count",
                  "last_opened_at"]


    def get_studies(self, share) -> list[str]:
        return list(share.shared_studies().order_by("pk").values_list("study_instance_uid", flat=True))


class ShareCreatedSerializer(ShareSerializer):
    url = serializers.CharField(help_text="The link: returned once, never stored.")
    access_code = serializers.CharField(help_text="The access code (made when none was given): give it to the "
                                                  "recipient another way than the link. Returned once.")

    class Meta(ShareSerializer.Meta):
        fields = ["url", "access_code", *ShareSerializer.Meta.fields]


class ShareAPIView(APIView):
    permission_classes = [HasTenantPerm.of("archive.share")]

    def get_share(self, share_id: int) -> Share:
        share = Share.objects.for_tenant(self.request.tenant).filter(pk=share_id).first()
        if share is None:
            raise NotFound("No such share.")
        return share


@extend_schema(tags=["shares"])
class ShareListView(ShareAPIView):
    @extend_schema(operation_id="shares_list", summary="The clinic's share links, newest first",
                   parameters=[TENANT_SLUG], responses={200: ShareSerializer(many=True), **ERRORS})
    @audits_phi_read
    def get(self, request):
        shares = list(Share.objects.for_tenant(request.tenant).select_related("tenant").order_by("-created_at")[:200])
        phi_read(request, action="shares.viewed", obj_type="share", detail={"via": "api", "shares": len(shares)})
        return Response(ShareSerializer(shares, many=True).data)

    @extend_schema(operation_id="shares_create", summary="Share a study",
                   description=("Makes a link for the study (or all of its patient's studies). The answer's "
                                "`url` is the only time the link is given; the recipient is emailed it "
                                "(never the access code)."),
                   parameters=[TENANT_SLUG], request=ShareCreateSerializer,
                   responses={201: ShareCreatedSerializer, 400: OpenApiResponse(description="Invalid fields."),
                              **ERRORS, 404: OpenApiResponse(ErrorSerializer, description="No such study.")})
    def post(self, request):
        incoming = ShareCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        try:
            study = study_get(tenant=request.tenant, study_uid=data["study_instance_uid"])
        except StudyNotFound:
            raise NotFound("No such study.") from None
        principal = request.principal
        refused = services.may_create(principal, allow_download=data["allow_download"])
        if refused:
            raise PermissionDenied(refused)
        # No access check unless asked for by name: without one, a code is made and returned.
        access = data.get("access") or Share.CODE
        code = data.get("access_code") or (new_access_code() if access == Share.CODE else "")
        try:
            made = services.share_create(
                tenant=request.tenant, study=study, actor=principal.actor(request._request),
                created_by=principal.user, whole_patient=data["whole_patient"],
                expires_in_days=data.get("expires_in_days"), access=access,
                access_code=code, allow_download=data["allow_download"],
                recipient_name=data.get("recipient_name", ""), recipient_email=data.get("recipient_email", ""),
                message=data.get("message", ""), deidentify=data["deidentify"])
        except DjangoValidationError as exc:
            raise ValidationError({"detail": exc.messages}) from None
        url = link_url(request, made.token)
        services.share_email(share=made.share, url=url)
        made.share.url = url
        made.share.access_code = code if access == Share.CODE else ""
        return Response(ShareCreatedSerializer(made.share).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["shares"])
class ShareDetailView(ShareAPIView):
    @extend_schema(operation_id="shares_retrieve", summary="One share link",
                   parameters=[TENANT_SLUG, SHARE_ID], responses={200: ShareSerializer, **ERRORS})
    @audits_phi_read
    def get(self, request, share_id: int):
        share = self.get_share(share_id)
        phi_read(request, action="shares.viewed", obj_type="share", obj_id=share.pk, detail={"via": "api"})
        return Response(ShareSerializer(share).data)

    @extend_schema(operation_id="shares_revoke", summary="Revoke a share link at once",
                   parameters=[TENANT_SLUG, SHARE_ID], responses={200: ShareSerializer, **ERRORS})
    def delete(self, request, share_id: int):
        share = self.get_share(share_id)
        services.share_revoke(share=share, actor=request.principal.actor(request._request))
        return Response(ShareSerializer(share).data)
