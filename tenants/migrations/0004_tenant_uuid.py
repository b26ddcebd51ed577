"""Tenant.uuid: each clinic's durable identity, to which its data keys are bound.

Existing clinics get a distinct random uuid each (a column default would give them all
the same one); their data keys stay wrapped the old way until `upgrade_data_keys`."""

import uuid

from django.db import migrations, models


def give_each_clinic_a_uuid(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    for pk in Tenant._default_manager.filter(uuid__isnull=True).values_list("pk", flat=True):
        Tenant._default_manager.filter(pk=pk).update(uuid=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [("tenants", "0003_audit_keyed_chain_and_anchors")]

    operations = [
        migrations.AddField("tenant", "uuid", models.UUIDField(null=True, editable=False)),
        migrations.RunPython(give_each_clinic_a_uuid, migrations.RunPython.noop),
        migrations.AlterField("tenant", "uuid",
                              models.UUIDField(default=uuid.uuid4, unique=True, editable=False)),
    ]
