def tenant_context(request):
    """The current clinic, the member's role, the clinics they can switch to, and the
    automatic logoff's limit in seconds (0: none) for the page's countdown."""
    from tenants.idle_logoff import idle_seconds, seconds_left

    tenant = getattr(request, "tenant", None)
    principal = getattr(request, "principal", None)
    memberships = []
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    if signed_in:
        # A person's memberships span clinics: unscoped on purpose.
        memberships = list(user.memberships(manager="unscoped").select_related("tenant")
                           .filter(tenant__status="active"))
    return {
        "tenant": tenant,
        "principal": principal,
        "perms_in_tenant": principal.perms if principal else frozenset(),
        "my_memberships": memberships,
        "idle_logoff_seconds": idle_seconds() if signed_in else 0,
        "idle_logoff_left": seconds_left(request.session) if signed_in else None,
    }
