"""Helpers shared by migrations (imported by them, so keep their behaviour stable)."""

from django.db import migrations


def content_types_move(old_label: str, new_label: str, models: list[str]) -> migrations.RunPython:
    """Relabel the content types of models that moved between apps, so that permissions
    and admin log entries follow them. On a new database there are none yet (they are
    made after migrating): nothing to do."""

    def forwards(apps, schema_editor):
        ContentType = apps.get_model("contenttypes", "ContentType")
        db = schema_editor.connection.alias
        for model in models:
            if not ContentType.objects.using(db).filter(app_label=new_label, model=model).exists():
                ContentType.objects.using(db).filter(app_label=old_label, model=model).update(app_label=new_label)

    def backwards(apps, schema_editor):
        content_types_move(new_label, old_label, models).code(apps, schema_editor)

    return migrations.RunPython(forwards, backwards, elidable=False)
