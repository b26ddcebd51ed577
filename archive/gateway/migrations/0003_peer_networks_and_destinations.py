"""DICOM peers become senders (allowed from an address or a CIDR range) and C-MOVE
destinations (a host name or address and a port). A peer pinned to one address keeps that
pin, as a one-address range, and keeps the address as its destination host."""

from django.db import migrations, models

import archive.gateway.models


class Migration(migrations.Migration):
    dependencies = [("gateway", "0002_scoped_default_manager")]

    operations = [
        migrations.AddField("dicompeer", "may_send", models.BooleanField(default=True)),
        migrations.AddField("dicompeer", "network", models.CharField(
            blank=True, max_length=49, help_text="senders only from this address or range (CIDR); empty: any",
            validators=[archive.gateway.models.validate_network])),
        migrations.AlterField("dicompeer", "host", models.CharField(blank=True, null=True, max_length=255)),
    ]
