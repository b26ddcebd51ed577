"""`manage.py retention_report SLUG [--json] [--date YYYY-MM-DD]`: a clinic's studies past
retention. It only reports: nothing is ever deleted automatically.

Prints study UIDs, dates and sizes, never patient names (terminal output ends up in logs)."""

import json
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from archive.retention.services import retention_fill_missing, retention_past
from tenants.audit import Actor, audit_record
from tenants.management.clinic import clinic_or_error


class Command(BaseCommand):
    help = "List a clinic's studies whose retention date has passed (deletes nothing)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--date", help="report as of this day (YYYY-MM-DD; default today)")

    def handle(self, *args, slug: str, json: bool = False, date: str | None = None, **options):
        tenant = clinic_or_error(slug)
        today = _day(date) if date else timezone.localdate()
        retention_fill_missing(tenant=tenant)
        rows = retention_past(tenant=tenant, today=today)
        studies = [{
            "study_pk": r.study_id, "study_instance_uid": r.study.study_instance_uid,
            "study_date": r.study.study_date, "modalities": r.study.modality_list,
            "retain_until": r.retain_until.isoformat(), "rule": r.rule,
            "num_instances": r.study.num_instances, "size_bytes": r.study.size_bytes,
        } for r in rows.iterator(chunk_size=2000)]
        audit_record(tenant=tenant, actor=Actor.system("retention_report command"),
                     action="retention.report_viewed", obj_type="retention_report",
                     detail={"as_of": today.isoformat(), "studies": len(studies), "via": "command"})
        if json:
            self.stdout.write(_dumps({"clinic": tenant.slug, "as_of": today.isoformat(),
                                      "past_retention": len(studies), "studies": studies}))
            return
        self.stdout.write(f"{len(studies)} studies of {tenant.slug} past retention as of {today}")
        for s in studies:
            self.stdout.write(f"{s['retain_until']}  {s['rule']:<11}  {s['study_instance_uid']}  "
                              f"{s['num_instances']} instances, {s['size_bytes']} bytes")


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--date must be YYYY-MM-DD, not {value!r}") from None


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True)
