# State only (no SQL): the scoped `objects` becomes the default manager of tenant-owned models.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('outbox', '0002_generic_subject'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='outbox',
            options={'default_manager_name': 'objects'},
        ),
        migrations.AlterModelManagers(
            name='outbox',
            managers=[
            ],
        ),
    ]
