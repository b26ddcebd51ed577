"""What the study page shows about sharing: the study's shares, and who looked at it
(members, tokens and share links alike), when and from where, from the audit log."""

from django.db.models import Q

from archive.sharing.models import Share
from tenants.audit import AuditEvent

ACCESS_EVENTS = 50


def study_shares(*, study) -> list[Share]:
    return list(Share.objects.for_tenant(study.tenant).filter(studies=study).order_by("-created_at")[:50])


def recent_shares(*, tenant, limit: int = 5) -> list[Share]:
    """The clinic's newest shares, for the dashboard."""
    return list(Share.objects.for_tenant(tenant).order_by("-created_at")[:limit])


def study_access_events(*, study) -> list[AuditEvent]:
    share_ids = [str(pk) for pk in Share.objects.for_tenant(study.tenant).filter(studies=study)
                 .values_list("pk", flat=True)]
    return list(AuditEvent.objects.for_tenant(study.tenant)
                .filter(Q(object_type="study", object_id=str(study.pk))
                        | Q(object_type="share", object_id__in=share_ids))
                .order_by("-seq")[:ACCESS_EVENTS])
