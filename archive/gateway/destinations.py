"""Where the gateway may connect out to (C-MOVE destinations, storage commitment reports).

A clinic admin types a destination's host; the connection starts inside the cloud. So the
address it resolves to, at the time of connecting, must not be one of the cloud's own:
loopback, link-local (the cloud metadata service lives there), unspecified or multicast,
or anything else in DICOM_DESTINATIONS_DENY. Private ranges stay allowed: a clinic's
workstations are reached through its VPN."""

import ipaddress
import socket

from django.conf import settings


class DestinationRefused(Exception):
    pass


def _denied_networks() -> list:
    return [ipaddress.ip_network(n.strip(), strict=False)
            for n in settings.DICOM_DESTINATIONS_DENY.split(",") if n.strip()]


def destination_check(host: str, port: int) -> None:
    """Raise DestinationRefused unless every address `host` resolves to may be called."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError) as exc:
        raise DestinationRefused(f"{host} does not resolve") from exc
    denied = _denied_networks()
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if ip.is_unspecified or ip.is_multicast or any(ip in network for network in denied):
            raise DestinationRefused(f"{host} resolves to an address the gateway does not call")
