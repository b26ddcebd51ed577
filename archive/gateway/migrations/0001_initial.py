"""The gateway models, moved here from the archive app (archive 0008). State only: their
tables (archive_*) were made by the archive app's migrations and stay as they are."""

import django.db.models.deletion
import django.db.models.manager
import django.utils.timezone
from django.db import migrations, models

from archive.migration_helpers import content_types_move


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('tenants', '0004_tenant_uuid'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='DicomPeer',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('ae_title', models.CharField(max_length=16)),
                        ('host', models.GenericIPAddressField(blank=True, null=True)),
                        ('port', models.PositiveIntegerField(blank=True, null=True)),
                        ('description', models.CharField(blank=True, max_length=200)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='tenants.tenant')),
                    ],
                    options={
                        'db_table': 'archive_dicompeer',
                        'ordering': ['ae_title'],
                        'constraints': [models.UniqueConstraint(fields=('tenant', 'ae_title'), name='uniq_peer_ae')],
                    },
                    managers=[
                        ('unscoped', django.db.models.manager.Manager()),
                    ],
                ),
            ],
        ),
        # Permissions and admin history follow the models to their new app label.
        content_types_move("archive", "gateway", ['dicompeer']),
    ]
