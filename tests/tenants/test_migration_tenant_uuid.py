"""Migration tenants 0004 gives every existing clinic a uuid of its own."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE, AFTER = ("tenants", "0003_audit_keyed_chain_and_anchors"), ("tenants", "0004_tenant_uuid")


@pytest.mark.django_db(transaction=True)
def test_existing_clinics_get_distinct_uuids():
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    try:
        old = executor.loader.project_state([BEFORE]).apps.get_model("tenants", "Tenant")
        for slug in ("north", "south", "east"):
            old.objects.create(slug=slug, name=slug, ae_title=slug.upper())
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    new = executor.loader.project_state([AFTER]).apps.get_model("tenants", "Tenant")
    uuids = list(new.objects.values_list("uuid", flat=True))
    assert len(uuids) == 3 and None not in uuids and len(set(uuids)) == 3
