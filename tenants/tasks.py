"""Celery tasks of the tenants app."""

from celery import shared_task


@shared_task(name="tenants.audit_anchor", acks_late=True)
def audit_anchor() -> int:
    """Periodic (beat): sign each moved audit chain head into both storage regions, so
    deleting the newest events is caught by verify_audit."""
    from tenants.audit_anchor import audit_anchor_run

    return audit_anchor_run()


@shared_task(name="tenants.sessions_clear", acks_late=True)
def sessions_clear() -> None:
    """Periodic (beat): remove expired sessions. A session holds a reader's recent worklist
    searches (patient names among them) and flash messages; Django leaves an expired row in
    the table until `clearsessions` runs."""
    from django.core.management import call_command

    call_command("clearsessions")
