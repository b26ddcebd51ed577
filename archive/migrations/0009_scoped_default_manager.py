# State only (no SQL): the scoped `objects` becomes the default manager of tenant-owned models.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('archive', '0008_models_move_to_their_apps'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='instance',
            options={'default_manager_name': 'objects'},
        ),
        migrations.AlterModelOptions(
            name='patient',
            options={'default_manager_name': 'objects'},
        ),
        migrations.AlterModelOptions(
            name='series',
            options={'default_manager_name': 'objects', 'verbose_name_plural': 'series'},
        ),
        migrations.AlterModelOptions(
            name='study',
            options={'default_manager_name': 'objects', 'verbose_name_plural': 'studies'},
        ),
        migrations.AlterModelManagers(
            name='instance',
            managers=[
            ],
        ),
        migrations.AlterModelManagers(
            name='patient',
            managers=[
            ],
        ),
        migrations.AlterModelManagers(
            name='series',
            managers=[
            ],
        ),
        migrations.AlterModelManagers(
            name='study',
            managers=[
            ],
        ),
    ]
