"""Keyed audit hashes (HMAC-SHA256 under a key derived from the master key) and anchors.

Events already written keep their plain SHA-256 hashes (hash_version 1). Each clinic that
has events gets its AuditKeyCheck row now, fixing under the key how many of its events are
such legacy ones; every later event must be keyed. Run `verify_audit` before upgrading:
the legacy part of a chain is taken as it is.
"""

import django.db.models.deletion
import django.db.models.manager
import django.utils.timezone
from django.db import migrations, models
from django.db.models import Max

HASH_VERSIONS = [(1, "SHA-256 (before keyed hashes)"), (2, "HMAC-SHA256")]


def seal_existing_chains(apps, schema_editor):
    AuditEvent = apps.get_model("tenants", "AuditEvent")
    AuditKeyCheck = apps.get_model("tenants", "AuditKeyCheck")
    heads = list(AuditEvent._default_manager.values("tenant_id").annotate(n=Max("seq"))
                 .order_by("tenant_id"))
    if not heads:
        return  # a new database: no key needed to migrate it
    from tenants.audit_keys import chain_key, key_check_mac, legacy_mac

    key = chain_key()
    for head in heads:
        AuditKeyCheck._default_manager.create(
            tenant_id=head["tenant_id"], legacy_events=head["n"],
            key_check=key_check_mac(key, head["tenant_id"]),
            legacy_mac=legacy_mac(key, head["tenant_id"], head["n"]))


class Migration(migrations.Migration):
    dependencies = [("tenants", "0002_audit_append_only_trigger")]

    operations = [
        # Rows already there were hashed with plain SHA-256; rows from now on are keyed.
        migrations.AddField(
            model_name="auditevent",
            name="hash_version",
            field=models.PositiveSmallIntegerField(choices=HASH_VERSIONS, default=1),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="hash_version",
            field=models.PositiveSmallIntegerField(choices=HASH_VERSIONS, default=2),
        ),
        migrations.CreateModel(
            name="AuditAnchorState",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.PositiveBigIntegerField()),
                ("hash", models.CharField(max_length=64)),
                ("anchored_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("tenant", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+", to="tenants.tenant")),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("tenant",), name="uniq_audit_anchor_state")],
            },
            managers=[("unscoped", django.db.models.manager.Manager())],
        ),
        migrations.CreateModel(
            name="AuditKeyCheck",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("legacy_events", models.PositiveBigIntegerField(default=0)),
                ("key_check", models.CharField(max_length=64)),
                ("legacy_mac", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("tenant", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+", to="tenants.tenant")),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("tenant",), name="uniq_audit_key_check")],
            },
            managers=[("unscoped", django.db.models.manager.Manager())],
        ),
        migrations.RunPython(seal_existing_chains, migrations.RunPython.noop, elidable=False),
    ]
