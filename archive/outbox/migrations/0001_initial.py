"""The outbox, moved here from the archive app (archive 0008) as it was there. State only:
its table (archive_outbox) was made by the archive app's migrations and stays."""

import django.db.models.deletion
import django.db.models.manager
import django.utils.timezone
from django.db import migrations, models

from archive.migration_helpers import content_types_move


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('archive', '0008_models_move_to_their_apps'),
        ('tenants', '0004_tenant_uuid'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='Outbox',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('archive', 'Archive instance to both regions')], max_length=32)),
                        ('payload', models.JSONField(blank=True, default=dict)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                        ('last_error', models.TextField(blank=True)),
                        ('next_attempt_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('done_at', models.DateTimeField(blank=True, null=True)),
                        ('instance', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='archive.instance')),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
                    ],
                    options={
                        'db_table': 'archive_outbox',
                        'indexes': [models.Index(fields=['done_at', 'next_attempt_at'], name='archive_out_done_at_b34730_idx')],
                    },
                    managers=[
                        ('unscoped', django.db.models.manager.Manager()),
                    ],
                ),
            ],
        ),
        content_types_move("archive", "outbox", ["outbox"]),
    ]
