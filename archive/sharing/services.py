"""Making, revoking, extending and opening shares; each step audited in the clinic's log.

A share reads exactly its studies: one study, or every study one patient had when the
share was made (the priors a referrer wants), frozen then."""

import datetime as dt
import hashlib
import logging
import smtplib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from archive.models import Study
from archive.sharing.deidentify import burned_in_risk
from archive.sharing.models import Share, token_hash
from cloudpacs.mail import secret_links_mailable
from tenants.audit import Actor, audit_record

ACCESS_CODE_MIN = 6
IP_WINDOW = dt.timedelta(hours=1)
# Patient IDs that name no one in particular: a "patient share" on one would gather
# strangers' studies (ingest files every study without an ID under one patient row).
PLACEHOLDER_PATIENT_IDS = {"", "0", "00000000", "UNKNOWN", "NONE", "NA", "N/A", "ANONYMOUS", "ANON", "NOID",
                           "NO ID", "TEST", "-"}
log = logging.getLogger(__name__)


def patient_studies(*, tenant, study: Study):
    """The studies a patient share of `study` covers: the same patient row, name and birth
    date (an ID typed twice for two people does not merge them); none when the study's
    Patient ID is missing or a placeholder."""
    if study.patient_identifier.strip().upper() in PLACEHOLDER_PATIENT_IDS:
        raise ValidationError("This study has no usable Patient ID, so its patient's other studies cannot be "
                              "told apart from other people's: share this study alone.")
    return Study.objects.for_tenant(tenant).filter(patient=study.patient, patient_name=study.patient_name,
                                                   patient_birth_date=study.patient_birth_date)


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
                 message: str = "", deidentify: bool = False, form_nonce: str | None = None) -> NewShare:
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
                      deidentify=deidentify, form_nonce=form_nonce,
                      created_by_label=actor.label,
                      expires_at=_expiry(expires_in_days or settings.SHARE_DEFAULT_DAYS))
        share.set_access_code(access_code if access == Share.CODE else "")
        if whole_patient:
            share.patient = study.patient
        share.save()
        studies = list(patient_studies(tenant=tenant, study=study)) if whole_patient else [study]
        share.studies.add(*studies)
        if deidentify:
            share.burned_in_risk = burned_in_risk(tenant, studies)
            share.save(update_fields=["burned_in_risk"])
        audit_record(tenant=tenant, actor=actor, action="share.created", obj_type="share", obj_id=str(share.pk),
                     detail={"studies": sorted(s.pk for s in studies), "access": access,
                             "allow_download": allow_download, "expires_at": share.expires_at.isoformat(),
                             "whole_patient": whole_patient, "deidentify": deidentify,
                     "burned_in_risk": share.burned_in_risk})
    return NewShare(share, token)


def may_create(principal, *, allow_download: bool) -> str | None:
    """Why `principal` may not make this share, or None. A share gives its holder what the
    maker could read: sharing needs archive.view besides archive.share, and a share that
    allows downloads needs archive.download (a token with only the `share` scope could
    otherwise read everything through links it makes itself)."""
    if not principal.can("archive.view"):
        return "Sharing needs the permission to view studies (token scope read)."
    if allow_download and not principal.can("archive.download"):
        return "Allowing downloads needs the permission to download studies."
    return None


def share_email(*, share: Share, url: str) -> bool:
    """The link to the recipient (never the access code: that goes another way). False
    when it was not sent: no address; in production, no real email configured (the console
    backend would print the link into the logs); or the mail server refused it. The link is
    made and shown to its maker either way."""
    if not share.recipient_email:
        return False
    if not secret_links_mailable():
        log.warning("share %s: not emailed, EMAIL_BACKEND is the console backend", share.pk)
        return False
    context = {"share": share, "url": url, "clinic": share.tenant.name}
    try:
        send_mail(subject=f"{share.tenant.name} shared images with you",
                  message=render_to_string("sharing/email.txt", context),
                  from_email=None, recipient_list=[share.recipient_email])
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("share %s: the mail server refused the email (%s)", share.pk, type(exc).__name__)
        return False
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
    """The share's studies in the order its pages list them: newest first, or for a
    de-identified share in the order they were stored (dates must not show in it)."""
    order = ("pk",) if share.deidentify else ("-study_date", "-study_time", "pk")
    return share.shared_studies().order_by(*order)


class Locked(Exception):
    def __init__(self, until):
        super().__init__(f"locked until {until}")
        self.until = until


def _birth_date_matches(share: Share, answer: str) -> bool:
    wanted = answer.replace("-", "").strip()
    dates = {s.patient_birth_date for s in share.shared_studies() if s.patient_birth_date}
    return len(wanted) == 8 and wanted in dates


def _ip_key(ip: str) -> str:
    return "share-access-ip:" + hashlib.sha256(ip.encode()).hexdigest()[:32]


def share_check_access(*, share: Share, answer: str, actor: Actor) -> bool:
    """The access check (code or birth date), one at a time per share (the row is locked
    while the answer is checked, so parallel tries cannot outrun the count). After
    SHARE_MAX_FAILURES wrong answers in a row the link refuses every try, the right one too,
    for SHARE_LOCKOUT_MINUTES, doubling with each lockout; and one address may give
    SHARE_IP_MAX_FAILURES wrong answers an hour across all links. Every refusal is audited."""
    ip_key = _ip_key(actor.ip) if actor.ip else None
    if ip_key and cache.get(ip_key, 0) >= settings.SHARE_IP_MAX_FAILURES:
        audit_record(tenant=share.tenant, actor=actor, action="share.access_refused", obj_type="share",
                     obj_id=str(share.pk), detail={"check": share.access, "address_limited": True})
        raise Locked(timezone.now() + IP_WINDOW)
    with transaction.atomic():
        row = Share.objects.for_tenant(share.tenant).select_for_update().get(pk=share.pk)
        now = timezone.now()
        if row.locked_until and row.locked_until > now:
            audit_record(tenant=share.tenant, actor=actor, action="share.access_refused", obj_type="share",
                         obj_id=str(share.pk), detail={"check": row.access, "while_locked": True})
            locked_until, ok = row.locked_until, False
        else:
            locked_until = None
            if row.access == Share.NONE:
                ok = True
            elif row.access == Share.CODE:
                ok = row.access_code_matches(answer)
            else:
                ok = _birth_date_matches(row, answer)
            if ok:
                row.failed_attempts, row.locked_until = 0, None
                row.save(update_fields=["failed_attempts", "locked_until"])
                return True
            row.failed_attempts += 1
            if row.failed_attempts >= settings.SHARE_MAX_FAILURES:
                row.lockouts += 1
                minutes = settings.SHARE_LOCKOUT_MINUTES * 2 ** min(row.lockouts - 1, 10)
                row.locked_until = locked_until = now + dt.timedelta(minutes=minutes)
                row.failed_attempts = 0
            row.save(update_fields=["failed_attempts", "locked_until", "lockouts"])
            audit_record(tenant=share.tenant, actor=actor, action="share.access_refused", obj_type="share",
                         obj_id=str(share.pk), detail={"check": row.access, "locked": locked_until is not None})
    if ip_key:
        cache.add(ip_key, 0, int(IP_WINDOW.total_seconds()))
        try:
            cache.incr(ip_key)
        except ValueError:  # expired between add and incr
            cache.set(ip_key, 1, int(IP_WINDOW.total_seconds()))
    if locked_until is not None:
        raise Locked(locked_until)
    return False


def share_opened(*, share: Share, actor: Actor) -> None:
    with transaction.atomic():
        Share.objects.for_tenant(share.tenant).filter(pk=share.pk).update(
            opened_count=F("opened_count") + 1, last_opened_at=timezone.now())
        audit_record(tenant=share.tenant, actor=actor, action="share.opened", obj_type="share",
                     obj_id=str(share.pk), detail={"studies": [s.pk for s in share.shared_studies()]})
