"""Trigram indexes for the worklist's substring searches, on PostgreSQL only.

The worklist finds "every word of the name appears somewhere" and "the referring
physician's name contains ..." -- LIKE '%...%' patterns that a b-tree cannot serve. On
PostgreSQL, pg_trgm GIN indexes can; the expressions below are exactly what Django
generates for `patient_name_search__contains` and `referring_physician_name__icontains`
(`col::text LIKE` and `UPPER(col::text) LIKE`), so the planner matches them.

SQLite (the embedded single-clinic mode) has no such index and scans the clinic's rows.
The indexes are not in the model's Meta because GinIndex would break SQLite migrations.
"""

from django.db import migrations

INDEXES = {
    "study_name_trgm": "(patient_name_search::text) gin_trgm_ops",
    "study_referring_trgm": "(UPPER(referring_physician_name::text)) gin_trgm_ops",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, expression in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON archive_study USING gin ({expression})")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("archive", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
