"""Defence in depth for the audit log on PostgreSQL: the database itself refuses UPDATE and
DELETE on tenants_auditevent, whatever the application does. The hash chain
(`manage.py verify_audit`) still detects tampering by anyone able to disable the trigger.

TRUNCATE stays allowed: only the table owner may run it, and Django's test flush uses it.
SQLite (the embedded mode) gets no trigger.
"""

from django.db import migrations

TRIGGER = "tenants_auditevent_append_only"

CREATE = [
    """
    CREATE OR REPLACE FUNCTION tenants_auditevent_refuse_change() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION USING
            MESSAGE = 'audit events are append-only: ' || TG_OP || ' refused',
            ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql
    """,
    f"""
    CREATE TRIGGER {TRIGGER} BEFORE UPDATE OR DELETE ON tenants_auditevent
        FOR EACH ROW EXECUTE FUNCTION tenants_auditevent_refuse_change()
    """,
]

DROP = [
    f"DROP TRIGGER IF EXISTS {TRIGGER} ON tenants_auditevent",
    "DROP FUNCTION IF EXISTS tenants_auditevent_refuse_change()",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [migrations.RunPython(_run(CREATE), _run(DROP), elidable=False)]
