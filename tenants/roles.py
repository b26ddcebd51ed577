"""Roles and what each may do: the one place permissions are written down.

A view asks `has_perm(role, "archive.upload")`; it never compares role names itself.
"""

OWNER = "owner"
ADMIN = "admin"
RADIOLOGIST = "radiologist"
TECHNOLOGIST = "technologist"
FRONT_DESK = "front_desk"
VIEWER = "viewer"

ROLE_CHOICES = [
    (OWNER, "Owner"),
    (ADMIN, "Admin"),
    (RADIOLOGIST, "Radiologist"),
    (TECHNOLOGIST, "Technologist"),
    (FRONT_DESK, "Front desk"),
    (VIEWER, "Viewer"),
]

# What each permission lets a member do.
PERMISSIONS = {
    "archive.view": "Find and view studies, their images and reports",
    "archive.upload": "Upload studies (browser, DICOMweb)",
    "archive.report": "Write, sign and amend reports; assign studies for reading",
    "archive.correct": "Correct a study's patient details, move a series, merge studies; revert corrections",
    "archive.connections": "See how modalities and scripts connect (AE title, host, port, DICOMweb)",
    "archive.download": "Download studies and export copies",
    "archive.share": "Create and revoke share links",
    "archive.delete_request": "Request deletion of a study",
    "archive.delete_approve": "Approve another admin's deletion request",
    "tenant.manage_members": "Invite members, change roles, remove members",
    "tenant.manage_tokens": "Create and revoke API tokens and gateway settings",
    "tenant.manage_settings": "Change clinic settings and retention policy",
    "tenant.view_audit": "Read and export the audit log",
    "billing.manage": "Payment method, charges and invoices",
}

_ALL = set(PERMISSIONS)
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    OWNER: frozenset(_ALL),
    ADMIN: frozenset(_ALL),
    RADIOLOGIST: frozenset({"archive.view", "archive.upload", "archive.download", "archive.share",
                            "archive.report"}),
    TECHNOLOGIST: frozenset({"archive.view", "archive.upload", "archive.connections"}),
    # Reception: takes in a patient's CD, shares studies with referrers, hands out copies.
    FRONT_DESK: frozenset({"archive.view", "archive.upload", "archive.download", "archive.share",
                           "archive.correct"}),
    VIEWER: frozenset({"archive.view"}),
}

# Roles whose members must use two-factor authentication.
ROLES_REQUIRING_2FA = frozenset({OWNER, ADMIN})

# Roles a member with `tenant.manage_members` may grant; only an owner makes owners.
GRANTABLE_ROLES = {
    OWNER: [r for r, _ in ROLE_CHOICES],
    ADMIN: [ADMIN, RADIOLOGIST, TECHNOLOGIST, FRONT_DESK, VIEWER],
}

# API token scopes and the permissions each carries.
SCOPE_UPLOAD = "upload"
SCOPE_READ = "read"
SCOPE_SHARE = "share"
TOKEN_SCOPES = {
    SCOPE_UPLOAD: frozenset({"archive.upload"}),
    SCOPE_READ: frozenset({"archive.view", "archive.download"}),
    SCOPE_SHARE: frozenset({"archive.share"}),
}


def has_perm(role: str | None, perm: str) -> bool:
    if perm not in PERMISSIONS:
        raise KeyError(f"unknown permission {perm!r}")
    return role is not None and perm in ROLE_PERMISSIONS.get(role, frozenset())


def scopes_grant(scopes: list[str], perm: str) -> bool:
    if perm not in PERMISSIONS:
        raise KeyError(f"unknown permission {perm!r}")
    return any(perm in TOKEN_SCOPES.get(scope, frozenset()) for scope in scopes)
