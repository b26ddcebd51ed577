"""BulkDataURI markers inside sequences become paths (sequence tag / item / tag), as
ingest now writes them (archive.ingest.parse.mark_bulk_paths), so that the metadata view
can make their URLs on the stored JSON text. Only headers with a sequence and a marker
are read; a large archive's progress is printed."""

from django.db import migrations
from django.db.models import TextField
from django.db.models.functions import Cast

BATCH = 500


def _mark(dataset: dict, prefix: str = "") -> bool:
    """Frozen copy of mark_bulk_paths (a migration keeps its behaviour); True if changed."""
    changed = False
    for tag, elem in dataset.items():
        if prefix and "BulkDataURI" in elem and elem["BulkDataURI"] != f"{prefix}{tag}":
            elem["BulkDataURI"] = f"{prefix}{tag}"
            changed = True
        elif elem.get("vr") == "SQ":
            for i, item in enumerate(elem.get("Value") or ()):
                if item:
                    changed = _mark(item, f"{prefix}{tag}/{i}/") or changed
    return changed


def forwards(apps, schema_editor):
    Instance = apps.get_model("archive", "Instance")
    manager = Instance._base_manager.db_manager(schema_editor.connection.alias)
    candidates = (manager
                  .annotate(header_text=Cast("metadata", TextField()))
                  .filter(header_text__contains='"SQ"').filter(header_text__contains="BulkDataURI"))
    total = candidates.count()
    changed, done = [], 0
    for pk, metadata in candidates.values_list("pk", "metadata").iterator(chunk_size=BATCH):
        if _mark(metadata):
            changed.append(Instance(pk=pk, metadata=metadata))
        done += 1
        if len(changed) >= BATCH:
            manager.bulk_update(changed, ["metadata"])
            changed = []
        if done % 10_000 == 0:
            print(f"\n  bulk data markers: {done:,} of {total:,} headers checked", flush=True)
    if changed:
        manager.bulk_update(changed, ["metadata"])


class Migration(migrations.Migration):

    dependencies = [
        ('archive', '0010_instance_original_encoding'),
    ]

    # Backwards needs nothing: a path marker of the outer element is still a valid URL path.
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True)]
