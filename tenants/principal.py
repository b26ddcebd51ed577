"""Who is making a request to a clinic's URL, and what they may do there."""

from dataclasses import dataclass, field

from tenants import roles
from tenants.audit import Actor, AuditEvent


def forwarded_client(remote_addr: str | None, forwarded_for: str, hops: int) -> str | None:
    """The client's address. Behind `hops` proxies, each appends the address it saw to
    X-Forwarded-For; entries further left were written by the client and can be forged,
    so only the one our outermost proxy appended is believed."""
    if hops > 0:
        forwarded = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return remote_addr


def client_ip(request) -> str | None:
    from django.conf import settings

    return forwarded_client(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR", ""),
                            settings.TRUSTED_PROXY_COUNT)


@dataclass
class Principal:
    """A member (user + role), an API token, or an opened share link, authenticated for
    one clinic. `study_uids` bounds what it may read: None is the whole clinic; a share
    reads exactly its studies."""

    kind: str  # "user", "token" or "share"
    user: object = None
    membership: object = None
    token: object = None
    share: object = None
    perms: frozenset = field(default_factory=frozenset)
    study_uids: frozenset | None = None

    @classmethod
    def for_membership(cls, membership) -> "Principal":
        return cls(kind="user", user=membership.user, membership=membership,
                   perms=roles.ROLE_PERMISSIONS.get(membership.role, frozenset()))

    @classmethod
    def for_token(cls, token) -> "Principal":
        perms = frozenset().union(*(roles.TOKEN_SCOPES.get(s, frozenset()) for s in token.scopes))
        return cls(kind="token", token=token, perms=perms)

    @classmethod
    def for_share(cls, share, *, perms: frozenset, study_uids: frozenset) -> "Principal":
        """`share` needs `pk` and `audit_label` (archive.sharing makes it; tenants cannot
        know the archive's models)."""
        return cls(kind="share", share=share, perms=perms, study_uids=frozenset(study_uids))

    def may_read_study(self, study_uid: str) -> bool:
        return self.study_uids is None or study_uid in self.study_uids

    def can(self, perm: str) -> bool:
        if perm not in roles.PERMISSIONS:
            raise KeyError(f"unknown permission {perm!r}")
        return perm in self.perms

    @property
    def role(self) -> str | None:
        return self.membership.role if self.membership else None

    def actor(self, request=None) -> Actor:
        ip = client_ip(request) if request is not None else None
        agent = request.META.get("HTTP_USER_AGENT", "") if request is not None else ""
        if self.kind == "token":
            return Actor(AuditEvent.TOKEN, str(self.token.pk), f"token {self.token.name}", ip, agent)
        if self.kind == "share":
            return Actor(AuditEvent.SHARE, str(self.share.pk), self.share.audit_label, ip, agent)
        return Actor(AuditEvent.USER, str(self.user.pk), self.user.email, ip, agent)
