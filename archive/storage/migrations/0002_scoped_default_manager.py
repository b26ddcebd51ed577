# State only (no SQL): the scoped `objects` becomes the default manager of tenant-owned models.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('storage', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='datakey',
            options={'default_manager_name': 'objects'},
        ),
        migrations.AlterModelOptions(
            name='fixityfinding',
            options={'default_manager_name': 'objects', 'ordering': ['-created_at']},
        ),
        migrations.AlterModelOptions(
            name='instancecopy',
            options={'default_manager_name': 'objects', 'verbose_name_plural': 'instance copies'},
        ),
        migrations.AlterModelManagers(
            name='datakey',
            managers=[
            ],
        ),
        migrations.AlterModelManagers(
            name='fixityfinding',
            managers=[
            ],
        ),
        migrations.AlterModelManagers(
            name='instancecopy',
            managers=[
            ],
        ),
    ]
