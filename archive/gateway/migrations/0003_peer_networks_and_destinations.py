"""DICOM peers become senders (allowed from an address or a CIDR range) and C-MOVE
destinations (a host name or address and a port). A peer pinned to one address keeps that
pin, as a one-address range, and keeps the address as its destination host."""

import ipaddress

from django.db import migrations, models

import archive.gateway.models


def pins_to_networks(apps, schema_editor):
    DicomPeer = apps.get_model("gateway", "DicomPeer")
    for peer in DicomPeer._base_manager.all():
        changed = []
        if peer.host is None:
            peer.host = ""
            changed.append("host")
        elif peer.host and not peer.network:
            peer.network = str(ipaddress.ip_network(peer.host, strict=False))
            changed.append("network")
        if changed:
            peer.save(update_fields=changed)


def networks_to_pins(apps, schema_editor):
    DicomPeer = apps.get_model("gateway", "DicomPeer")
    for peer in DicomPeer._base_manager.exclude(network=""):
        network = ipaddress.ip_network(peer.network, strict=False)
        if network.num_addresses == 1:
            peer.host = str(network.network_address)
            peer.save(update_fields=["host"])


class Migration(migrations.Migration):
    dependencies = [("gateway", "0002_scoped_default_manager")]

    operations = [
        migrations.AddField("dicompeer", "may_send", models.BooleanField(default=True)),
        migrations.AddField("dicompeer", "network", models.CharField(
            blank=True, max_length=49, help_text="senders only from this address or range (CIDR); empty: any",
            validators=[archive.gateway.models.validate_network])),
        migrations.AlterField("dicompeer", "host", models.CharField(blank=True, null=True, max_length=255)),
        migrations.RunPython(pins_to_networks, networks_to_pins),
        migrations.AlterField("dicompeer", "host", models.CharField(
            blank=True, max_length=255, help_text="a destination's host name or address")),
    ]
