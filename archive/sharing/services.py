"""Making, revoking, extending and opening shares; each step audited in the clinic's log.

A share reads exactly its studies: one study, or every study one patient had when the
share was made (the priors a referrer wants), frozen then."""

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from archive.models import Study
from archive.sharing.deidentify import burned_in_risk
from archive.sharing.models import Share, token_hash
from tenants.audit import Actor, audit_record

ACCESS_CODE_MIN = 6


@dataclass
class NewShare:
    share: Share
    token: str  # shown once: only its hash is stored


def _expiry(days: int) -> dt.datetime:
    if not 1 <= days <= settings.SHARE_MAX_DAYS:
        raise ValidationError(f"A share lasts from 1 to {settings.SHARE_MAX_DAYS} days.")
    return timezone.now() + dt.timedelta(days=days)


def share_create(*, tenant, study: Study, actor: Actor, created_by=None, whole_patient: bool = False,
                 expires_in_days: int | None = None, access: str = Share.CODE, access_code: str = "",
                 allow_download: bool = False, recipient_name: str = "", recipient_email: str = "",
                 message: str = "", deidentify: bool = False) -> NewShare:
    if access not in dict(Share.ACCESS_CHOICES):
        raise ValidationError("Unknown access check.")
    if access == Share.CODE and len(access_code) < ACCESS_CODE_MIN:
        raise ValidationError(f"The access code needs at least {ACCESS_CODE_MIN} characters.")
    if access == Share.BIRTH_DATE and not study.patient_birth_date:
        raise ValidationError("The study has no birth date to check: choose an access code.")
    if access == Share.BIRTH_DATE and deidentify:
        raise ValidationError("A de-identified share cannot ask for the birth date: choose an access code.")
    token = Share.new_token()
    with transaction.atomic():
        share = Share(tenant=tenant, token_hash=token_hash(token), access=access,
                      allow_download=allow_download, recipient_name=recipient_name,
                      recipient_email=recipient_email, message=message, created_by=created_by,
                      deidentify=deidentify,
                      created_by_label=actor.label,
                      expires_at=_expiry(expires_in_days or settings.SHARE_DEFAULT_DAYS))
        share.set_access_code(access_code if access == Share.CODE else "")
        if whole_patient:
            share.patient = study.patient
        share.save()
        studies = (Study.objects.for_tenant(tenant).filter(patient=study.patient) if whole_patient
                   else [study])
        share.studies.add(*studies)
        if deidentify:
            share.burned_in_risk = burned_in_risk(list(share.shared_studies()))
            share.save(update_fields=["burned_in_risk"])
        audit_record(tenant=tenant, actor=actor, action="share.created", obj_type="share", obj_id=str(share.pk),
                     detail={"studies": sorted(s.pk for s in share.shared_studies()), "access": access,
                             "allow_download": allow_download, "expires_at": share.expires_at.isoformat(),
                             "whole_patient": whole_patient, "deidentify": deidentify,
                     "burned_in_risk": share.burned_in_risk})
    return NewShare(share, token)


def share_email(*, share: Share, url: str) -> bool:
    """The link to the recipient (never the access code: that goes another way). False
    when there is no address."""
    if not share.recipient_email:
        return False
    context = {"share": share, "url": url, "clinic": share.tenant.name}
    send_mail(subject=f"{share.tenant.name} shared images with you",
              message=render_to_string("sharing/email.txt", context),
              from_email=None, recipient_list=[share.recipient_email])
    return True


def share_revoke(*, share: Share, actor: Actor) -> None:
    with transaction.atomic():
        updated = Share.objects.for_tenant(share.tenant).filter(pk=share.pk, revoked_at__isnull=True) \
            .update(revoked_at=timezone.now())
        if updated:
            audit_record(tenant=share.tenant, actor=actor, action="share.revoked", obj_type="share",
                         obj_id=str(share.pk), detail={})
    share.refresh_from_db()


def share_extend(*, share: Share, days: int, actor: Actor) -> None:
    """A new expiry `days` from now (longer or shorter); a revoked share stays revoked."""
    if share.is_revoked:
        raise ValidationError("A revoked share cannot be extended: make a new one.")
    with transaction.atomic():
        share.expires_at = _expiry(days)
        share.save(update_fields=["expires_at"])
        audit_record(tenant=share.tenant, actor=actor, action="share.extended", obj_type="share",
                     obj_id=str(share.pk), detail={"expires_at": share.expires_at.isoformat()})


def share_find(raw_token: str) -> Share | None:
    """The share a link's token names (any clinic's: the token selects it), or None."""
    if not raw_token or len(raw_token) > 128:
        return None
    return Share.unscoped.select_related("tenant").filter(token_hash=token_hash(raw_token)).first()


def share_studies(share: Share):
    return share.shared_studies().order_by("-study_date", "-study_time", "pk")


class Locked(Exception):
    def __init__(self, until):
        super().__init__(f"locked until {until}")
        self.until = until


def _birth_date_matches(share: Share, answer: str) -> bool:
    wanted = answer.replace("-", "").strip()
    dates = {s.patient_birth_date for s in share.shared_studies() if s.patient_birth_date}
    return len(wanted) == 8 and wanted in dates


def share_check_access(*, share: Share, answer: str, actor: Actor) -> bool:
    """The access check (code or birth date). Wrong answers count; after
    SHARE_MAX_FAILURES in a row the link refuses every try for SHARE_LOCKOUT_MINUTES."""
    now = timezone.now()
    if share.locked_until and share.locked_until > now:
        raise Locked(share.locked_until)
    if share.access == Share.NONE:
        ok = True
    elif share.access == Share.CODE:
        ok = share.access_code_matches(answer)
    else:
        ok = _birth_date_matches(share, answer)
    with transaction.atomic():
        if ok:
            Share.objects.for_tenant(share.tenant).filter(pk=share.pk).update(failed_attempts=0, locked_until=None)
            return True
        Share.objects.for_tenant(share.tenant).filter(pk=share.pk).update(failed_attempts=F("failed_attempts") + 1)
        share.refresh_from_db(fields=["failed_attempts"])
        locked = share.failed_attempts >= settings.SHARE_MAX_FAILURES
        if locked:
            share.locked_until = now + dt.timedelta(minutes=settings.SHARE_LOCKOUT_MINUTES)
            share.failed_attempts = 0
            share.save(update_fields=["locked_until", "failed_attempts"])
        audit_record(tenant=share.tenant, actor=actor, action="share.access_refused", obj_type="share",
                     obj_id=str(share.pk), detail={"check": share.access, "locked": locked})
    if locked:
        raise Locked(share.locked_until)
    return False


def share_opened(*, share: Share, actor: Actor) -> None:
    with transaction.atomic():
        Share.objects.for_tenant(share.tenant).filter(pk=share.pk).update(
            opened_count=F("opened_count") + 1, last_opened_at=timezone.now())
        audit_record(tenant=share.tenant, actor=actor, action="share.opened", obj_type="share",
                     obj_id=str(share.pk), detail={"studies": [s.pk for s in share.shared_studies()]})
