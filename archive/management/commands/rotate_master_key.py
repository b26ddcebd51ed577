"""`manage.py rotate_master_key`: move every clinic's data keys to a new master key without
re-encrypting any object. Resumable: run it again after an interruption.

1. Give every process (web, worker, beat, gateway) the new key as CLOUDPACS_MASTER_KEY_NEXT
   and restart them: from then on a data key wrapped under either key is readable.
2. Run this command. It pins the audit log's keys first (they were derived from the master
   key; they are written to AUDIT_KEYS_FILE, or must already be in CLOUDPACS_AUDIT_KEYS),
   then re-wraps each data key under the new master key and rewrites its key document in
   both regions (what a restore from one region reads).
3. Give every process the pinned audit keys (CLOUDPACS_AUDIT_KEYS, the file's content, or
   the file itself), set CLOUDPACS_MASTER_KEY to the new key, remove
   CLOUDPACS_MASTER_KEY_NEXT, restart. A process without the audit keys refuses to write
   audit events (it would break the chain). The old key can then be destroyed."""

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from archive.storage.keys import data_keys_not_under, data_keys_rewrap
from archive.storage.models import DataKey
from cloudpacs.objectstore.master_key import key_id, master_key, next_master_key
from cloudpacs.objectstore.regions import REGIONS
from tenants.audit import Actor, audit_keys_mismatched, audit_record
from tenants.audit_keys import audit_keys_pinned, audit_keys_value
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Re-wrap every clinic's data keys under CLOUDPACS_MASTER_KEY_NEXT (objects untouched; resumable)."

    def handle(self, *args, **options):
        following = next_master_key()
        if following is None:
            raise CommandError("set CLOUDPACS_MASTER_KEY_NEXT (base64 of 32 bytes, the new key) on every "
                               "process and restart them first; then run this again")
        if following == master_key():
            raise CommandError("CLOUDPACS_MASTER_KEY_NEXT is the master key already: nothing to rotate")
        self._pin_audit_keys()
        rewrapped = data_keys_rewrap(
            to=following, regions=REGIONS,
            report=lambda done, total: self.stderr.write(f"data keys: {done}/{total}"))
        # Keys made meanwhile by a process not yet given the next key: until there are none.
        for _ in range(5):
            if not data_keys_not_under(following):
                break
            rewrapped += data_keys_rewrap(to=following, regions=REGIONS)
        else:
            raise CommandError("data keys are still being made under the old master key: give every process "
                               "CLOUDPACS_MASTER_KEY_NEXT, restart them, and run this again")
        tenants = Tenant.objects.filter(pk__in=DataKey.unscoped.values("tenant_id"))
        for tenant in tenants:
            audit_record(tenant=tenant, actor=Actor.system("rotate_master_key"), action="keys.master_rotated",
                         obj_type="clinic", obj_id=tenant.pk,
                         detail={"from": key_id(master_key()), "to": key_id(following)})
        self.stdout.write(
            f"re-wrapped {rewrapped} data keys under master key {key_id(following)} (the others were "
            "already); key documents rewritten in both regions. Now set CLOUDPACS_MASTER_KEY to the new key, "
            "remove CLOUDPACS_MASTER_KEY_NEXT, and restart every process; then the old key can be destroyed.")

    def _pin_audit_keys(self) -> None:
        if audit_keys_pinned():
            wrong = audit_keys_mismatched()
            if wrong:
                raise CommandError(f"the pinned audit keys (CLOUDPACS_AUDIT_KEYS or {settings.AUDIT_KEYS_FILE}) are "
                                   f"not the ones the audit log was written with ({len(wrong)} clinics): fix them first")
            return
        path = settings.AUDIT_KEYS_FILE
        value = audit_keys_value()  # still derived from the current master key
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.stderr.write(f"the audit log's keys are pinned in {path}: keep it with the master key, and give "
                          "its content to every process as CLOUDPACS_AUDIT_KEYS (or this file) before step 3; a "
                          "process without it refuses to write audit events rather than break the chain")
