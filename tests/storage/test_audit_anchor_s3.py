"""Audit anchors against two real S3 regions (SeaweedFS): written to both buckets, read back
by verify_audit, which then finds the newest events deleted."""

import json

from tenants.audit import Actor, AuditEvent, audit_record
from tenants.tasks import audit_anchor
from tests.tenants.audit_tamper import delete_newest, verify, verify_fails


def test_anchors_in_both_s3_regions_catch_a_cut_chain(tenant, s3_regions, seaweed):
    for i in range(3):
        audit_record(tenant=tenant, actor=Actor.system(), action="study.viewed",
                     obj_type="study", obj_id=str(i))
    assert audit_anchor.apply().get() == 1
    head = AuditEvent.objects.for_tenant(tenant).get(seq=5)
    for server in seaweed.values():
        body = server.client().get_object(Bucket=server.bucket,
                                          Key=f"_audit/{tenant.pk}/000000000005.json")["Body"]
        assert json.loads(body.read())["hash"] == head.hash
    assert ("acme: 5 events, chain intact; anchored at event 5 in primary; anchored at event 5 "
            "in secondary") in verify("acme")

    delete_newest(tenant, 1)
    out = verify_fails("acme")
    for region in ("primary", "secondary"):
        assert f"acme: chain ends at event 4 but {region} anchored event 5" in out
