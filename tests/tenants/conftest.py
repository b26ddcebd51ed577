"""Fixtures of the audit tests: a master key of the test's own and storage regions in a
temporary folder (anchors of earlier runs, whose clinic ids the test database reuses,
must not be read as this run's)."""

import base64
import os

import pytest

AUDIT_TEST_MASTER_KEY = base64.b64encode(os.urandom(32)).decode()


def use_master_key(settings, value: str) -> None:
    from cloudpacs.objectstore.master_key import master_key

    settings.CLOUDPACS_MASTER_KEY = value
    master_key.cache_clear()


@pytest.fixture
def audit_master_key(settings):
    use_master_key(settings, AUDIT_TEST_MASTER_KEY)
    yield base64.b64decode(AUDIT_TEST_MASTER_KEY)
    from cloudpacs.objectstore.master_key import master_key

    master_key.cache_clear()


@pytest.fixture
def audit_regions(settings, tmp_path):
    """Both regions as local folders under tmp_path, as in the embedded mode."""
    paths = {region: tmp_path / "regions" / region for region in ("primary", "secondary")}
    # Assigning STORAGES makes Django drop its cached storage instances.
    settings.STORAGES = {**settings.STORAGES, **{
        region: {"BACKEND": "django.core.files.storage.FileSystemStorage",
                 "OPTIONS": {"location": str(path), "allow_overwrite": True}}
        for region, path in paths.items()}}
    return paths
