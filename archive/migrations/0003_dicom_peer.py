import django.db.models.deletion
import django.db.models.manager
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0002_worklist_trigram_indexes"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="DicomPeer",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("ae_title", models.CharField(max_length=16)),
                ("host", models.GenericIPAddressField(blank=True, null=True)),
                ("port", models.PositiveIntegerField(blank=True, null=True)),
                ("description", models.CharField(blank=True, max_length=200)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("tenant", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                             to="tenants.tenant")),
            ],
            options={"ordering": ["ae_title"]},
            managers=[("unscoped", django.db.models.manager.Manager())],
        ),
        migrations.AddConstraint(
            model_name="dicompeer",
            constraint=models.UniqueConstraint(fields=("tenant", "ae_title"), name="uniq_peer_ae"),
        ),
    ]
