def tenant_context(request):
    """The current clinic, the member's role and the clinics they can switch to."""
    tenant = getattr(request, "tenant", None)
    principal = getattr(request, "principal", None)
    memberships = []
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        # A person's memberships span clinics: unscoped on purpose.
        memberships = list(user.memberships(manager="unscoped").select_related("tenant")
                           .filter(tenant__status="active"))
    return {
        "tenant": tenant,
        "principal": principal,
        "perms_in_tenant": principal.perms if principal else frozenset(),
        "my_memberships": memberships,
    }
