"""An opened share lives in the browser's session, never in a URL: after the access check
the session holds the share's public id, and each request under /s/v/<public id>/ finds
the share again, so revoking or expiring it ends access at the next request. The
principal it gets reads exactly the share's studies (tenants.principal.Principal)."""

from django.http import HttpRequest

from archive.sharing.deidentify import Deidentifier
from archive.sharing.models import Share
from tenants.principal import Principal

SESSION_KEY = "cloudpacs_shares"


def grant(request: HttpRequest, share: Share) -> None:
    opened = set(request.session.get(SESSION_KEY, []))
    # A new session key at the moment access is granted: a session id planted earlier
    # (fixation) does not inherit the share.
    request.session.cycle_key()
    opened.add(str(share.public_id))
    request.session[SESSION_KEY] = sorted(opened)


def is_granted(request: HttpRequest, share: Share) -> bool:
    return str(share.public_id) in request.session.get(SESSION_KEY, [])


def opened_share(request: HttpRequest, public_id) -> Share | None:
    """The share this session opened, active or not (revoked, expired, its clinic gone):
    the caller decides, from `usable()`, whether it still opens anything."""
    if str(public_id) not in request.session.get(SESSION_KEY, []):
        return None
    return Share.unscoped.select_related("tenant").filter(public_id=public_id).first()


def usable(share: Share) -> bool:
    return share.is_active and share.tenant.is_active


def study_uids(share: Share) -> frozenset:
    return frozenset(share.shared_studies().values_list("study_instance_uid", flat=True))


def principal(share: Share, uids: frozenset) -> Principal:
    perms = {"archive.view"} | ({"archive.download"} if share.allow_download else set())
    return Principal.for_share(share, perms=frozenset(perms), study_uids=uids)


def enter(request: HttpRequest, share: Share) -> None:
    """Make this request the share's: its clinic, a principal bounded to its studies, and
    for a de-identified share the pseudonyms every answer is rewritten with."""
    request.tenant = share.tenant
    request.principal = principal(share, study_uids(share))
    request.deidentifier = Deidentifier(share) if share.deidentify else None
