"""What the clinic's dashboard shows about its archive: how much is stored, whether the
archive work (copies to both regions) is keeping up, how modalities connect, and each
role's own work (recent studies, the reading queue, the members).

Three small aggregate queries, all on indexed (tenant, ...) columns: the dashboard is the
page every member lands on, so it must stay cheap however large the archive grows. The
recent studies and the reading queue name patients, so the dashboard audits its reads.
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from archive.gateway.models import DicomPeer
from archive.models import Study
from archive.outbox.models import Outbox
from archive.selectors.worklist import with_read_status
from archive.storage.pipeline import ARCHIVE
from tenants.models import Invitation, Membership

# More allowed peers than this are summarised as a count.
PEERS_SHOWN = 10


@dataclass
class ArchiveSummary:
    studies: int
    instances: int
    size_bytes: int
    archive_pending: int  # instances whose copies to the object stores are not done yet
    archive_failing: int  # of those, how many have failed at least once (will be retried)


@dataclass
class DicomConnection:
    ae_title: str
    host: str
    port: int
    peers: list[str] = field(default_factory=list)
    peers_total: int = 0

    @property
    def peers_more(self) -> int:
        return self.peers_total - len(self.peers)


def archive_summary(*, tenant) -> ArchiveSummary:
    totals = Study.objects.for_tenant(tenant).aggregate(
        studies=Count("pk"), instances=Sum("num_instances"), size=Sum("size_bytes"))
    outbox = (Outbox.objects.for_tenant(tenant).filter(kind=ARCHIVE, done_at__isnull=True)
              .aggregate(pending=Count("pk"), failing=Count("pk", filter=Q(attempts__gt=0))))
    return ArchiveSummary(studies=totals["studies"], instances=totals["instances"] or 0,
                          size_bytes=totals["size"] or 0, archive_pending=outbox["pending"],
                          archive_failing=outbox["failing"])


def dicom_connection(*, tenant) -> DicomConnection:
    """The DIMSE gateway's address and the clinic's AE title, with the calling AE titles it
    accepts (the allow-list a modality must be on)."""
    senders = DicomPeer.objects.for_tenant(tenant).filter(may_send=True)
    peers = list(senders.order_by("ae_title").values_list("ae_title", flat=True)[:PEERS_SHOWN + 1])
    total = len(peers)
    if total > PEERS_SHOWN:
        total = senders.count()
    return DicomConnection(ae_title=tenant.ae_title, host=settings.DICOM_HOST, port=settings.DICOM_PORT,
                           peers=peers[:PEERS_SHOWN], peers_total=total)


RECENT = 8


def recent_studies(*, tenant, limit: int = RECENT) -> list[Study]:
    """The newest studies received, with their read status: what was just uploaded or sent."""
    return list(with_read_status(Study.objects.for_tenant(tenant)).order_by("-created_at", "-pk")[:limit])


@dataclass
class ReadingQueue:
    studies: list[Study]  # assigned to this reader, or to nobody; oldest first
    unread: int  # studies nobody has reported on, in the whole clinic
    mine: int  # assigned to this reader and not signed yet


def reading_queue(*, tenant, user, limit: int = RECENT) -> ReadingQueue:
    pending = with_read_status(Study.objects.for_tenant(tenant)).exclude(read_state="final")
    queue = pending.filter(Q(report__assigned_to=user) | Q(report__assigned_to__isnull=True))
    return ReadingQueue(studies=list(queue.order_by("created_at", "pk")[:limit]),
                        unread=pending.filter(read_state="unread").count(),
                        mine=pending.filter(report__assigned_to=user).count())


def members_summary(*, tenant) -> dict:
    members = Membership.objects.for_tenant(tenant)
    return {"members": members.count(),
            "invitations": Invitation.objects.for_tenant(tenant).filter(
                accepted_at=None, revoked_at=None, expires_at__gt=timezone.now()).count()}
