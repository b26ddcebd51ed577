from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render


@login_required
def home(request):
    """Send a member to their last clinic, or let them choose one."""
    # Before a clinic is chosen: the person's memberships in all clinics, unscoped on purpose.
    memberships = list(request.user.memberships(manager="unscoped").select_related("tenant")
                       .filter(tenant__status="active"))
    last = request.session.get("last_tenant")
    for membership in memberships:
        if membership.tenant.slug == last:
            return redirect("clinic:dashboard", tenant_slug=last)
    if len(memberships) == 1:
        return redirect("clinic:dashboard", tenant_slug=memberships[0].tenant.slug)
    return render(request, "tenants/choose_clinic.html", {"memberships": memberships})
