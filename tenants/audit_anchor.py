"""Anchors: each clinic's chain head, signed and kept outside the database.

Keyed hashes stop anyone from rewriting audit events, but not from deleting the newest
ones: nothing in the table says how long the chain was. So a periodic task
(`tenants.audit_anchor`, every AUDIT_ANCHOR_INTERVAL_SECONDS) writes, for each clinic whose
head moved, `{tenant_id, seq, hash, time}` signed with an HMAC (a key derived from the
master key) to both storage regions under `_audit/<tenant id>/<seq>.json`. `verify_audit`
reads the newest anchor back and checks that the chain still holds that event with that
hash. Events appended after the last anchor can still vanish unnoticed: that window is
the interval.

`AuditAnchorState` only spares the task from re-anchoring an unchanged head. Verification
never reads it: whoever can rewrite audit rows can rewrite it too.
"""

import io
import json
import logging
from dataclasses import dataclass, field

from django.db import models
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from tenants.audit_keys import anchor_key, canonical, mac, same
from tenants.scoping import TenantOwned

log = logging.getLogger(__name__)

ANCHOR_DIR = "_audit"
ANCHOR_VERSION = 1


class AuditAnchorState(TenantOwned):
    """The head last anchored in both regions, per clinic (bookkeeping, never trusted)."""

    seq = models.PositiveBigIntegerField()
    hash = models.CharField(max_length=64)
    anchored_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant"], name="uniq_audit_anchor_state")]


def anchor_name(tenant_id: int, seq: int) -> str:
    # Ids and numbers only: no PHI in object keys. Zero-padded so listings sort by seq.
    return f"{ANCHOR_DIR}/{tenant_id}/{seq:012d}.json"


def _signed(body: dict) -> dict:
    return {**body, "mac": mac(anchor_key(), canonical(body))}


@dataclass(frozen=True)
class Anchor:
    region: str
    name: str
    tenant_id: int
    seq: int
    hash: str
    time: str
    valid: bool  # signature good and contents consistent with the object's name


def _parse(region: str, name: str, raw: bytes, tenant_id: int, seq: int) -> Anchor:
    try:
        doc = json.loads(raw)
        body = {k: doc[k] for k in ("version", "tenant_id", "seq", "hash", "time")}
        valid = (same(str(doc["mac"]), mac(anchor_key(), canonical(body)))
                 and body["tenant_id"] == tenant_id and body["seq"] == seq)
        return Anchor(region, name, tenant_id, seq, str(body["hash"]), str(body["time"]), valid)
    except (ValueError, KeyError, TypeError):
        return Anchor(region, name, tenant_id, seq, "", "", False)


def anchor_latest(region: str, tenant_id: int) -> Anchor | None:
    """The clinic's newest anchor in `region` (highest seq), or None if it has none.
    Raises whatever the region raises when it cannot be listed or read."""
    from archive.storage.objects import object_open
    from archive.storage.regions import region_storage

    folder = f"{ANCHOR_DIR}/{tenant_id}"
    try:
        _dirs, files = region_storage(region).listdir(folder)
    except FileNotFoundError:  # a local-folder region without anchors for this clinic
        return None
    seqs = [int(f[:-5]) for f in files if f.endswith(".json") and f[:-5].isdigit()]
    if not seqs:
        return None
    seq = max(seqs)  # by number, not by name: the padding may one day be outgrown
    name = anchor_name(tenant_id, seq)
    stream = object_open(region, name)
    try:
        raw = stream.read()
    finally:
        stream.close()
    return _parse(region, name, raw, tenant_id, seq)


class AnchorRefused(Exception):
    """The chain no longer matches its last anchor: anchoring over it would hide that."""


def _chain_hash_at(tenant_id: int, seq: int) -> str | None:
    from tenants.audit import AuditEvent

    return (AuditEvent.unscoped.filter(tenant_id=tenant_id, seq=seq)
            .values_list("hash", flat=True).first())


def anchor_write(*, tenant_id: int, seq: int, hash: str) -> None:
    """Anchor (seq, hash) as the clinic's head in both regions, unless the chain has lost or
    changed the event its newest existing anchor names (then AnchorRefused)."""
    from archive.storage.objects import object_put
    from archive.storage.regions import REGIONS

    newest = [a for a in (anchor_latest(region, tenant_id) for region in REGIONS)
              if a is not None and a.valid]
    if newest:
        last = max(newest, key=lambda a: a.seq)
        found = _chain_hash_at(tenant_id, last.seq)
        if last.seq > seq or found is None or not same(found, last.hash):
            raise AnchorRefused(f"audit chain of clinic {tenant_id} no longer matches its anchor "
                                f"at event {last.seq} in {last.region}; run verify_audit")
    doc = _signed({"version": ANCHOR_VERSION, "tenant_id": tenant_id, "seq": seq, "hash": hash,
                   "time": timezone.now().isoformat()})
    data = json.dumps(doc, sort_keys=True).encode()
    for region in REGIONS:
        object_put(region, anchor_name(tenant_id, seq), io.BytesIO(data))


def audit_anchor_run() -> int:
    """Anchor every clinic whose head moved since its last anchor; returns how many were
    anchored. A clinic that fails (region down, chain not matching) is logged and retried
    next run; the others go on."""
    from tenants.audit import AuditEvent

    newest_seq = (AuditEvent.unscoped.filter(tenant_id=OuterRef("tenant_id"))
                  .order_by("-seq").values("seq")[:1])
    heads = (AuditEvent.unscoped.filter(seq=Subquery(newest_seq))
             .values_list("tenant_id", "seq", "hash"))
    states = {s.tenant_id: s for s in AuditAnchorState.unscoped.all()}
    anchored = 0
    for tenant_id, seq, hash in heads:
        state = states.get(tenant_id)
        if state is not None and state.seq == seq and same(state.hash, hash):
            continue
        try:
            anchor_write(tenant_id=tenant_id, seq=seq, hash=hash)
        except AnchorRefused as exc:
            log.error("%s", exc)
            continue
        except Exception:  # noqa: BLE001 - one clinic's failure must not stop the others
            log.exception("audit anchor of clinic %s at event %s not written; retried next run",
                          tenant_id, seq)
            continue
        AuditAnchorState.unscoped.update_or_create(
            tenant_id=tenant_id, defaults={"seq": seq, "hash": hash, "anchored_at": timezone.now()})
        anchored += 1
    return anchored


@dataclass
class AnchorReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was checked, or not
    unreachable: list[str] = field(default_factory=list)  # regions that could not be read


def anchors_verify(*, tenant, unreachable: dict[str, str]) -> AnchorReport:
    """Check the clinic's chain against the newest anchor in each reachable region.

    `unreachable` (region -> reason) is shared across clinics: a region that failed once is
    not waited for again in the same run."""
    from archive.storage.regions import REGIONS
    from tenants.audit import AuditEvent

    report = AnchorReport()
    head = (AuditEvent.objects.for_tenant(tenant).order_by("-seq")
            .values_list("seq", flat=True).first()) or 0
    for region in REGIONS:
        if region not in unreachable:
            try:
                anchor = anchor_latest(region, tenant.pk)
            except Exception as exc:  # noqa: BLE001 - any failure to read means: cannot tell
                unreachable[region] = type(exc).__name__
            else:
                _check(report, tenant.pk, head, region, anchor)
                continue
        report.unreachable.append(region)
        report.notes.append(f"{region} unreachable ({unreachable[region]}), anchors not checked")
    return report


def _check(report: AnchorReport, tenant_id: int, head: int, region: str,
           anchor: Anchor | None) -> None:
    if anchor is None:
        report.notes.append(f"no anchor yet in {region}")
        return
    if not anchor.valid:
        report.problems.append(f"anchor {anchor.name} in {region} has a bad signature or "
                               "contents")
        return
    found = _chain_hash_at(tenant_id, anchor.seq)
    if found is None and head < anchor.seq:
        report.problems.append(f"chain ends at event {head} but {region} anchored event "
                               f"{anchor.seq} at {anchor.time}: newest events were removed")
    elif found is None:
        report.problems.append(f"event {anchor.seq}, anchored in {region}, is missing")
    elif not same(found, anchor.hash):
        report.problems.append(f"event {anchor.seq} differs from its anchor in {region} "
                               f"(anchored at {anchor.time})")
    else:
        report.notes.append(f"anchored at event {anchor.seq} in {region}")
