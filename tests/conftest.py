"""Shared fixtures: a realistic clinic with members of each role, in two lines."""

import os
import uuid

import pytest

# Each test session gets its own Celery queue, so concurrent runs on one broker never
# take each other's messages.
os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", f"test-{uuid.uuid4().hex[:12]}")
# The servers and commands the tests start hash passwords as fast as this process does
# (cloudpacs/settings.py), so each can check the other's.
os.environ["CLOUDPACS_TEST_FAST_HASHER"] = "1"
# A study is priced at once (in the workers and servers the tests start, and, by the
# fixture below, here), so "every outbox row done" means what it says; tests of the
# settling delay set it themselves.
os.environ.setdefault("BILLING_SETTLE_SECONDS", "0")
# Every peer of the tests listens on loopback, which a deployed gateway never calls (C-MOVE
# destinations, commitment reports): the tests allow it; test_gateway_destinations checks
# the default.
TEST_DESTINATIONS_DENY = "169.254.0.0/16,fe80::/10"
os.environ.setdefault("DICOM_DESTINATIONS_DENY", TEST_DESTINATIONS_DENY)
FAST_HASHER = "django.contrib.auth.hashers.MD5PasswordHasher"

from tenants import roles  # noqa: E402

PASSWORD = "correct horse battery staple 42"


@pytest.fixture(scope="session", autouse=True)
def _tmp_path_base_chosen_first(tmp_path_factory):
    """A gateway started in this process points `tempfile` at its spool folder (pynetdicom
    writes received data sets there: archive.gateway.server.build_ae), and pytest picks
    tmp_path's base from `tempfile` when first asked: after a gateway test, tmp_path was
    inside a swept spool folder, too long for a Unix socket's path. Chosen before any test."""
    tmp_path_factory.getbasetemp()


@pytest.fixture(autouse=True)
def _billing_settles_at_once(settings):
    settings.BILLING_SETTLE_SECONDS = 0
    settings.DICOM_DESTINATIONS_DENY = TEST_DESTINATIONS_DENY


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The cache is shared across processes (a folder, or Redis): start each test empty."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _per_image_reads_audited_afresh():
    """Reads covered by an earlier event are remembered per process (tenants.phi_audit):
    each test starts with none, as its clinics and users may reuse earlier tests' keys."""
    from tenants.phi_audit import forget_covered_reads

    forget_covered_reads()
    yield


@pytest.fixture(autouse=True)
def _argon2_marker(request):
    """`@pytest.mark.argon2`: the product's hashers, for tests of password hashing itself."""
    if request.node.get_closest_marker("argon2"):
        settings = request.getfixturevalue("settings")
        settings.PASSWORD_HASHERS = [h for h in settings.PASSWORD_HASHERS if h != FAST_HASHER]


@pytest.fixture
def make_tenant(db):
    from tenants.services import tenant_create

    def make(slug="acme", name=None, owner_email=None):
        tenant, _ = tenant_create(slug=slug, name=name or slug.title() + " Clinic",
                                  owner_email=owner_email or f"owner@{slug}.test",
                                  owner_password=PASSWORD)
        return tenant

    return make


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("acme")


@pytest.fixture
def other_tenant(make_tenant):
    return make_tenant("other")


@pytest.fixture
def make_member(db):
    from tenants.models import Membership, User

    def make(tenant, role=roles.RADIOLOGIST, email=None):
        email = email or f"{role}-{uuid.uuid4().hex[:6]}@{tenant.slug}.test"
        user = User.objects.filter(email=email).first() or User.objects.create_user(email, PASSWORD)
        Membership.objects.for_tenant(tenant).get_or_create(user=user, defaults={"role": role})
        return user

    return make


def _verify_second_factor(client, user):
    """Give the client's session a verified TOTP device, as after a real 2FA login."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or TOTPDevice.objects.create(
        user=user, name="test phone", confirmed=True)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    return device


@pytest.fixture
def login(client):
    """`login(user)` logs the test client in, with 2FA verified where the role needs it."""

    def do_login(user, second_factor=True, the_client=None):
        c = the_client or client
        c.force_login(user)
        if second_factor:
            _verify_second_factor(c, user)
        return c

    return do_login


@pytest.fixture
def owner(tenant):
    return tenant_owner(tenant)


def tenant_owner(tenant):
    from tenants.models import Membership

    return Membership.objects.for_tenant(tenant).get(role=roles.OWNER).user


@pytest.fixture
def make_token(db):
    from tenants.audit import Actor
    from tenants.services import api_token_create

    def make(tenant, scopes=("upload", "read"), name="test token"):
        _, raw = api_token_create(tenant=tenant, name=name, scopes=list(scopes), actor=Actor.system("test"))
        return raw

    return make
