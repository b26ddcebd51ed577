"""The storage models, moved here from the archive app (archive 0008). State only: their
tables (archive_*) were made by the archive app's migrations and stay as they are."""

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
                    name='FixityRun',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('checked', models.PositiveIntegerField(default=0)),
                        ('ok', models.PositiveIntegerField(default=0)),
                        ('repaired', models.PositiveIntegerField(default=0)),
                        ('unrepaired', models.PositiveIntegerField(default=0)),
                        ('error', models.TextField(blank=True)),
                    ],
                    options={
                        'db_table': 'archive_fixityrun',
                        'ordering': ['-started_at'],
                    },
                ),
                migrations.CreateModel(
                    name='FixityFinding',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('storage_key', models.CharField(max_length=128)),
                        ('region', models.CharField(max_length=16)),
                        ('problem', models.CharField(max_length=16)),
                        ('action', models.CharField(max_length=16)),
                        ('detail', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('instance', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='archive.instance')),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
                        ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='findings', to='storage.fixityrun')),
                    ],
                    options={
                        'db_table': 'archive_fixityfinding',
                        'ordering': ['-created_at'],
                    },
                    managers=[
                        ('unscoped', django.db.models.manager.Manager()),
                    ],
                ),
                migrations.CreateModel(
                    name='DataKey',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('version', models.PositiveIntegerField()),
                        ('wrapped', models.BinaryField()),
                        ('active', models.BooleanField(default=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
                    ],
                    options={
                        'db_table': 'archive_datakey',
                        'constraints': [models.UniqueConstraint(fields=('tenant', 'version'), name='uniq_datakey_version')],
                    },
                    managers=[
                        ('unscoped', django.db.models.manager.Manager()),
                    ],
                ),
                migrations.CreateModel(
                    name='InstanceCopy',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('region', models.CharField(max_length=16)),
                        ('state', models.CharField(choices=[('pending', 'pending'), ('uploaded', 'uploaded'), ('verified', 'verified'), ('failed', 'failed')], default='pending', max_length=16)),
                        ('cipher_sha256', models.CharField(blank=True, max_length=64)),
                        ('cipher_size', models.PositiveBigIntegerField(blank=True, null=True)),
                        ('key_id', models.BigIntegerField(blank=True, null=True)),
                        ('uploaded_at', models.DateTimeField(blank=True, null=True)),
                        ('verified_at', models.DateTimeField(blank=True, null=True)),
                        ('checked_at', models.DateTimeField(blank=True, null=True)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                        ('last_error', models.TextField(blank=True)),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('instance', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='copies', to='archive.instance')),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
                    ],
                    options={
                        'verbose_name_plural': 'instance copies',
                        'db_table': 'archive_instancecopy',
                        'indexes': [models.Index(fields=['tenant', 'region', 'state'], name='archive_ins_tenant__b51b7e_idx')],
                        'constraints': [models.UniqueConstraint(fields=('instance', 'region'), name='uniq_copy_region')],
                    },
                    managers=[
                        ('unscoped', django.db.models.manager.Manager()),
                    ],
                ),
            ],
        ),
        # Permissions and admin history follow the models to their new app label.
        content_types_move("archive", "storage", ['datakey', 'instancecopy', 'fixityrun', 'fixityfinding']),
    ]
