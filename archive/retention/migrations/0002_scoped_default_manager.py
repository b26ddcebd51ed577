# State only (no SQL): the scoped `objects` becomes the default manager of tenant-owned models.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('retention', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='deletionrequest',
            options={'default_manager_name': 'objects'},
        ),
        migrations.AlterModelOptions(
            name='retentionpolicy',
            options={'default_manager_name': 'objects', 'verbose_name_plural': 'retention policies'},
        ),
        migrations.AlterModelOptions(
            name='studyretention',
            options={'default_manager_name': 'objects'},
        ),
        migrations.AlterModelOptions(
            name='studytombstone',
            options={'default_manager_name': 'objects'},
        ),
        migrations.AlterModelManagers(
            name='deletionrequest',
            managers=[
            ],
        ),
        migrations.AlterModelManagers(
            name='retentionpolicy',
            managers=[
            ],
        ),
        migrations.AlterModelManagers(
            name='studyretention',
            managers=[
            ],
        ),
        migrations.AlterModelManagers(
            name='studytombstone',
            managers=[
            ],
        ),
    ]
