"""The retention models, moved here from the archive app (archive 0008). State only: their
tables (archive_*) were made by the archive app's migrations and stay as they are."""

import django.core.validators
import django.db.models.deletion
import django.db.models.manager
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from archive.migration_helpers import content_types_move


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('archive', '0008_models_move_to_their_apps'),
        ('tenants', '0004_tenant_uuid'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='DeletionRequest',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('study_instance_uid', models.CharField(max_length=64)),
                        ('reason', models.TextField(max_length=1000)),
                        ('override_retention', models.BooleanField(default=False)),
                        ('retain_until', models.DateField(blank=True, null=True)),
                        ('state', models.CharField(choices=[('pending', 'Pending'), ('approved', 'Approved'), ('cancelled', 'Cancelled')], default='pending', max_length=16)),
                        ('requested_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('decided_at', models.DateTimeField(blank=True, null=True)),
                        ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('requested_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('study', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='deletion_requests', to='archive.study')),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
                    ],
                    options={
                        'db_table': 'archive_deletionrequest',
                    },
                    managers=[
                        ('unscoped', django.db.models.manager.Manager()),
                    ],
                ),
                migrations.CreateModel(
                    name='RetentionPolicy',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('adult_years', models.PositiveSmallIntegerField(default=7, validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(100)])),
                        ('minor_years', models.PositiveSmallIntegerField(default=7, help_text='years after the 18th birthday', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(100)])),
                        ('mammography_years', models.PositiveSmallIntegerField(default=10, validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(100)])),
                        ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
                    ],
                    options={
                        'verbose_name_plural': 'retention policies',
                        'db_table': 'archive_retentionpolicy',
                    },
                    managers=[
                        ('unscoped', django.db.models.manager.Manager()),
                    ],
                ),
                migrations.CreateModel(
                    name='StudyRetention',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('retain_until', models.DateField()),
                        ('rule', models.CharField(choices=[('adult', 'Adult: years after the study date'), ('minor', 'Minor: years after the 18th birthday'), ('mammography', 'Mammography: years after the study date')], max_length=16)),
                        ('mammography', models.BooleanField(default=False)),
                        ('computed_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('study', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='retention', to='archive.study')),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
                    ],
                    options={
                        'db_table': 'archive_studyretention',
                    },
                    managers=[
                        ('unscoped', django.db.models.manager.Manager()),
                    ],
                ),
                migrations.CreateModel(
                    name='StudyTombstone',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('study_instance_uid', models.CharField(max_length=64)),
                        ('num_instances', models.PositiveIntegerField()),
                        ('size_bytes', models.PositiveBigIntegerField()),
                        ('reason', models.TextField()),
                        ('override_retention', models.BooleanField(default=False)),
                        ('retain_until', models.DateField(blank=True, null=True)),
                        ('requested_by_email', models.CharField(blank=True, max_length=254)),
                        ('approved_by_email', models.CharField(blank=True, max_length=254)),
                        ('requested_at', models.DateTimeField()),
                        ('deleted_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('storage_keys', models.JSONField(default=list)),
                        ('objects_purged_at', models.DateTimeField(blank=True, null=True)),
                        ('purge_error', models.TextField(blank=True)),
                        ('approved_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('request', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='tombstone', to='retention.deletionrequest')),
                        ('requested_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
                    ],
                    options={
                        'db_table': 'archive_studytombstone',
                    },
                    managers=[
                        ('unscoped', django.db.models.manager.Manager()),
                    ],
                ),
                migrations.AddIndex(
                    model_name='deletionrequest',
                    index=models.Index(fields=['tenant', 'state', '-requested_at'], name='archive_del_tenant__05191c_idx'),
                ),
                migrations.AddConstraint(
                    model_name='deletionrequest',
                    constraint=models.UniqueConstraint(condition=models.Q(('state', 'pending')), fields=('study',), name='uniq_pending_deletion'),
                ),
                migrations.AddConstraint(
                    model_name='retentionpolicy',
                    constraint=models.UniqueConstraint(fields=('tenant',), name='uniq_retention_policy'),
                ),
                migrations.AddIndex(
                    model_name='studyretention',
                    index=models.Index(fields=['tenant', 'retain_until'], name='archive_stu_tenant__385467_idx'),
                ),
                migrations.AddIndex(
                    model_name='studytombstone',
                    index=models.Index(fields=['tenant', 'study_instance_uid'], name='archive_stu_tenant__0a8ada_idx'),
                ),
            ],
        ),
        # Permissions and admin history follow the models to their new app label.
        content_types_move("archive", "retention", ['retentionpolicy', 'studyretention', 'deletionrequest', 'studytombstone']),
    ]
