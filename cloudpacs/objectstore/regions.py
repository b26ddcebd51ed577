"""The two storage regions, as Django storages (local folders or S3 through django-storages)."""

from django.core.files.storage import storages

PRIMARY = "primary"
SECONDARY = "secondary"
REGIONS = (PRIMARY, SECONDARY)


def region_storage(region: str):
    if region not in REGIONS:
        raise ValueError(f"unknown region {region!r}")
    return storages[region]


def check_regions_reachable() -> None:
    """Raise if either region cannot be listed (for /readyz)."""
    for region in REGIONS:
        region_storage(region).exists("healthcheck/.probe")
