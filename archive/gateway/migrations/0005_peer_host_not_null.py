"""A destination's host is text, never NULL (0004 emptied the NULLs)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("gateway", "0004_peer_pins_to_networks")]
    operations = [migrations.AlterField("dicompeer", "host", models.CharField(
        blank=True, max_length=255, help_text="a destination's host name or address"))]
