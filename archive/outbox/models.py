from django.db import models
from django.utils import timezone

from tenants.scoping import TenantOwned


class Outbox(TenantOwned):
    """One piece of work that must follow a committed change (archive an instance to both
    regions; bill a study, notify, forward next).

    Written in the same transaction as the change, so the work is never lost and never
    done for a change that rolled back. The handler registered for its `kind`
    (archive/outbox/registry.py) does it and the row is marked done; a periodic sweeper
    re-drives rows left undone."""

    kind = models.CharField(max_length=32)
    # The id of what the work is about, in the kind's own terms (an Instance for "archive"):
    # indexed, so a page can ask how far the work on its objects has got.
    subject_id = models.BigIntegerField(null=True, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwned.Meta):
        db_table = "archive_outbox"  # made under the archive app; kept
        indexes = [models.Index(fields=["done_at", "next_attempt_at"], name="archive_out_done_at_b34730_idx"),
                   models.Index(fields=["kind", "subject_id"], name="outbox_kind_subject_idx")]

    def __str__(self) -> str:
        return f"Outbox {self.kind} {self.pk}"
