"""What the clinic API returns for studies, series and storage state, and what it accepts."""

from django.urls import reverse
from rest_framework import serializers

from archive.models import Series, Study
from archive.selectors.worklist import DEFAULT_SORT, MAX_NAME_TERMS, MAX_PAGE_SIZE, PAGE_SIZE, SORTS


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(required=False, help_text="What went wrong (DRF errors).")
    error = serializers.CharField(required=False, help_text="What went wrong (errors raised before the view).")


class StudySearchSerializer(serializers.Serializer):
    """Query parameters of `GET studies/`: the worklist's filters, sort and keyset cursor."""

    name = serializers.CharField(required=False, max_length=100, help_text=(
        f"Patient name: each word (up to {MAX_NAME_TERMS}) must appear somewhere in the name, "
        "any case and order (\"doe jan\" finds DOE^JANE)."))
    patient_id = serializers.CharField(required=False, max_length=64, help_text="Exact Patient ID (0010,0020).")
    date_from = serializers.DateField(required=False, help_text="Study date on or after (YYYY-MM-DD).")
    date_to = serializers.DateField(required=False, help_text="Study date on or before (YYYY-MM-DD).")
    modality = serializers.RegexField(r"^[A-Za-z0-9]{1,16}$", required=False,
                                      help_text="A modality in the study, e.g. CT.")
    accession = serializers.CharField(required=False, max_length=64, help_text="Exact accession number.")
    referring = serializers.CharField(required=False, max_length=100,
                                      help_text="Part of the referring physician's name, any case.")
    sort = serializers.ChoiceField(choices=list(SORTS), default=DEFAULT_SORT, help_text=(
        "date: newest study date first; name: patient name A-Z; created: most recently received first."))
    after = serializers.IntegerField(required=False, allow_null=True, min_value=1, help_text=(
        "Keyset cursor: the id of the last study of the previous page (use the `next` link)."))
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE, default=PAGE_SIZE,
                                     help_text="Studies per page.")

    def validate(self, attrs):
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"date_to": "The end date is before the start date."})
        return attrs


class StudySerializer(serializers.ModelSerializer):
    """A study as listed: the attributes of the study and of its patient."""

    id = serializers.IntegerField(read_only=True, help_text="The study's id in this clinic (not a DICOM UID).")
    patient_id = serializers.CharField(source="patient_identifier", help_text="Patient ID (0010,0020).")
    modalities = serializers.ListField(child=serializers.CharField(), source="modality_list",
                                       help_text="Modalities in the study (0008,0061).")
    url = serializers.SerializerMethodField(help_text="This study in the API.")

    class Meta:
        model = Study
        fields = ["id", "url", "study_instance_uid", "study_date", "study_time", "accession_number",
                  "study_id", "study_description", "referring_physician_name", "patient_name",
                  "patient_id", "patient_birth_date", "patient_sex", "modalities", "num_series",
                  "num_instances", "size_bytes", "created_at"]
        read_only_fields = fields
        extra_kwargs = {
            "study_instance_uid": {"help_text": "Study Instance UID (0020,000D)."},
            "study_date": {"help_text": "Study date as DICOM writes it (YYYYMMDD), may be empty."},
            "patient_name": {"help_text": "Patient's name as a DICOM person name (FAMILY^GIVEN)."},
            "num_instances": {"help_text": "Instances (images) stored."},
            "size_bytes": {"help_text": "Bytes stored, all instances."},
            "created_at": {"help_text": "When the first instance of the study was received."},
        }

    def get_url(self, study: Study) -> str:
        request = self.context["request"]
        path = reverse("archive:api_study_detail", kwargs={"tenant_slug": request.tenant.slug, "pk": study.pk})
        return request.build_absolute_uri(path)


class StudyPageSerializer(serializers.Serializer):
    results = StudySerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page, null on the last page.")
    next_after = serializers.IntegerField(allow_null=True, help_text="The `after` cursor of the next page.")


class StudySearchPageSerializer(serializers.Serializer):
    results = StudySerializer(many=True)
    next_after = serializers.IntegerField(allow_null=True, help_text=(
        "Post the same search again with this `after` for the next page; null on the last page."))


class SeriesSerializer(serializers.ModelSerializer):
    size_bytes = serializers.IntegerField(allow_null=True, help_text="Bytes stored for this series.")

    class Meta:
        model = Series
        fields = ["id", "series_instance_uid", "series_number", "modality", "series_description",
                  "body_part_examined", "series_date", "series_time", "num_instances", "size_bytes"]
        read_only_fields = fields


class StudyDetailSerializer(StudySerializer):
    """A study with its series."""

    series = SeriesSerializer(many=True, source="series_list", help_text="Series in scanner order.")

    class Meta(StudySerializer.Meta):
        fields = [*StudySerializer.Meta.fields, "specific_character_set", "series"]
        read_only_fields = fields


class RegionStateSerializer(serializers.Serializer):
    region = serializers.CharField(help_text='Storage region, e.g. "primary" or "secondary".')
    counts = serializers.DictField(child=serializers.IntegerField(),
                                   help_text="Instances by copy state (pending, uploaded, verified, failed).")
    total = serializers.IntegerField()


class OutboxStateSerializer(serializers.Serializer):
    pending = serializers.IntegerField(source="outbox_pending", help_text="Instances still being archived.")
    done = serializers.IntegerField(source="outbox_done", help_text="Instances archived to both regions.")
    failing = serializers.IntegerField(source="outbox_failing",
                                       help_text="Pending instances whose archiving failed at least once "
                                                 "(retried automatically).")


class StorageStateSerializer(serializers.Serializer):
    instances = serializers.IntegerField(help_text="Instances in the study.")
    complete = serializers.BooleanField(help_text="Every instance has been archived.")
    outbox = OutboxStateSerializer(source="*")
    regions = RegionStateSerializer(many=True, help_text=(
        "Copies per region; empty where this deployment does not report per-region copies."))
    source = serializers.ChoiceField(choices=["copies", "outbox"],
                                     help_text="copies: per-region copy records; outbox: archive work only.")
