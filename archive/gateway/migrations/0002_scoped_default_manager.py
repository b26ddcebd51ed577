# State only (no SQL): the scoped `objects` becomes the default manager of tenant-owned models.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('gateway', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='dicompeer',
            options={'default_manager_name': 'objects', 'ordering': ['ae_title']},
        ),
        migrations.AlterModelManagers(
            name='dicompeer',
            managers=[
            ],
        ),
    ]
