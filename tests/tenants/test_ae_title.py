"""A clinic's DICOM AE title defaults to its slug upper-cased and cut to 16 characters."""

from tenants.models import Tenant
from tenants.services import tenant_create
from tests.conftest import PASSWORD


def create(slug):
    tenant, _ = tenant_create(slug=slug, name=slug, owner_email=f"owner@{slug}.test", owner_password=PASSWORD)
    return tenant


def test_slug_upper_cased(db):
    assert create("acme").ae_title == "ACME"
    assert create("north-side-imaging").ae_title == "NORTH-SIDE-IMAGI"


def test_slugs_alike_in_their_first_16_characters_get_distinct_titles(db):
    first = create("riverside-radiology-east")
    second = create("riverside-radiology-west")
    assert first.ae_title == "RIVERSIDE-RADIOL"
    assert second.ae_title == "RIVERSIDE-RADI-2"
    assert Tenant.objects.filter(ae_title__startswith="RIVERSIDE").count() == 2
