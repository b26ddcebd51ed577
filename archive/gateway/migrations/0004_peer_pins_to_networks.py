"""Data for 0003, in a transaction of its own (PostgreSQL will not alter a table that has
rows updated in the same transaction): an address pin becomes a one-address range, and no
host is NULL any more."""

import ipaddress

from django.db import migrations


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
    dependencies = [("gateway", "0003_peer_networks_and_destinations")]
    operations = [migrations.RunPython(pins_to_networks, networks_to_pins)]
