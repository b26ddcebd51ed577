"""`manage.py compress_backlog SLUG [--limit N]`: queue the lossless re-encoding of a
clinic's images stored before it turned compression on (new images are queued as they are
archived). Workers do the work; the clinic's storage page shows what it saved."""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Q

from archive.models import Instance
from archive.outbox.models import Outbox
from archive.outbox.services import outbox_add
from archive.storage.compression import COMPRESS, compressible
from archive.storage.models import InstanceCopy
from archive.storage.policy import policy_get
from cloudpacs.objectstore.regions import REGIONS
from tenants.audit import Actor, audit_record
from tenants.models import Tenant

CHUNK = 500


class Command(BaseCommand):
    help = "Queue the lossless re-encoding of a clinic's images stored uncompressed."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--limit", type=int, default=0, help="queue at most this many (0 = all)")

    def handle(self, *args, slug: str, limit: int, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no clinic {slug!r}")
        if not policy_get(tenant=tenant).compression_syntax:
            raise CommandError(f"clinic {slug!r} has compression off: turn it on on its storage page first")
        queued_already = Outbox.objects.for_tenant(tenant).filter(kind=COMPRESS, done_at=None).values("subject_id")
        # Only images whose original both regions hold: the re-encoding replaces them.
        candidates = (Instance.objects.for_tenant(tenant).filter(original_sha256="")
                      .exclude(pk__in=queued_already)
                      .annotate(verified=Count("copies", filter=Q(copies__state=InstanceCopy.VERIFIED)))
                      .filter(verified=len(REGIONS)).order_by("pk")
                      .only("id", "tenant_id", "transfer_syntax_uid", "metadata", "original_sha256", "size_bytes"))
        queued, seen, last = 0, 0, 0
        while not limit or queued < limit:
            chunk = list(candidates.filter(pk__gt=last)[:CHUNK])
            if not chunk:
                break
            last, seen = chunk[-1].pk, seen + len(chunk)
            ids = [i.pk for i in chunk if compressible(i)][:limit - queued if limit else None]
            if ids:
                outbox_add(tenant=tenant, kind=COMPRESS, subjects=ids)
            queued += len(ids)
            self.stdout.write(f"looked at {seen} images, queued {queued}")
        audit_record(tenant=tenant, actor=Actor.system("compress_backlog"), action="storage.compress_backlog",
                     obj_type="clinic", obj_id=tenant.pk, detail={"queued": queued})
        self.stdout.write(f"queued {queued} images of {slug} for lossless re-encoding")
