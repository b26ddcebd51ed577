"""Tenant isolation, proven by walking EVERY URL of the project.

Every pattern from `get_resolver()` is either a clinic URL (under `/t/<slug>/`) or listed
in PUBLIC_URLS with the reason it may live outside a clinic. For each clinic URL the walker
builds a real URL into a victim clinic and sends every HTTP method as:

  (a) an anonymous client                   -> 302 to the login page, or 401; never data;
  (b) a 2FA-verified owner of another clinic -> 404;
  (c) an upload+read API token of another clinic -> 404;
  (d) the other clinic's owner and token, in THEIR OWN clinic, naming the victim's object
      ids (the classic IDOR)                 -> an error status (GET: 404), never data
      (OPTIONS, which describes the endpoint without loading the object, only never data);

and no response body may contain the victim's name, owner email or the sample's secrets.
A control request as the victim's own owner proves each built URL is real (not a 404), so
the 404s above come from isolation, not from a bad sample.

Adding a URL with parameters? Register a sample factory for its URL name: either here in
SAMPLES, or in a `tests/<app>/isolation_samples.py` module exporting `SAMPLES = {name:
factory}` (found automatically). A factory takes the victim Tenant, creates a real object
of that clinic, and returns the URL kwargs (without tenant_slug) -- or a tuple
(kwargs, secrets) where secrets are strings of that object that must never leak (a patient
name, a UID).
"""

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse

from tests.conftest import PASSWORD, _verify_second_factor, tenant_owner

TENANT_KWARG = "tenant_slug"
METHODS = ("get", "head", "options", "post", "put", "patch", "delete")

# Parameters that name no object, filled the same for every URL.
GENERIC_PARAMS = {"format": "json", "rest": "viewer"}  # rest: a route inside the OHIF viewer

# URLs outside /t/<slug>/, each with the reason it needs no clinic. A name ending in ":*"
# covers a whole namespace.
PUBLIC_URLS: dict[str, str] = {
    "admin:*": "platform operators' Django admin (staff only; holds no PHI)",
    "healthz": "liveness probe for the load balancer; says nothing about any clinic",
    "readyz": "readiness probe (database, broker, storage); says nothing about any clinic",
    "api-schema": "OpenAPI schema of the clinic API: endpoints, no data",
    "api-docs": "rendered API documentation: endpoints, no data",
    "home": "sends a logged-in user to one of their own clinics",
    "login": "logging in happens before any clinic is chosen",
    "password_reset": "a forgotten password is reset before any clinic is chosen",
    "password_reset_done": "a forgotten password is reset before any clinic is chosen",
    "password_reset_confirm": "a forgotten password is reset before any clinic is chosen",
    "password_reset_complete": "a forgotten password is reset before any clinic is chosen",
    "logout": "logging out ends the session for every clinic",
    "account": "the user's own account (password, 2FA), shared by all their clinics",
    "session_clock": "the automatic logoff's clock belongs to the session, not a clinic",
    "2fa_setup": "enrolling a second factor belongs to the user, not a clinic",
    "2fa_verify": "verifying the second factor belongs to the user, not a clinic",
    "invitation_accept": "the invitee has no membership yet; the secret token selects the clinic",
    "stripe_webhook": "Stripe's events: signed with the webhook secret; the event's customer selects the clinic",
    "sharing:*": ("share links for people without an account: the secret token selects the share, then "
                  "the session; tests/archive/test_sharing.py and test_share_scope_walker.py"),
}


# --- samples: a real object of the victim clinic for each parameterized URL name ---------

SampleFactory = Callable[..., dict | tuple]
SAMPLES: dict[str, SampleFactory] = {}


def sample(*names: str):
    def register(factory: SampleFactory) -> SampleFactory:
        for name in names:
            SAMPLES[name] = factory
        return factory

    return register


@sample("clinic:member_role", "clinic:member_remove", "clinic:member_password_reset")
def _membership(victim):
    from tenants import roles
    from tenants.models import Membership, User

    user = User.objects.create_user("victim-radiologist@victim.test", PASSWORD)
    membership = Membership.objects.for_tenant(victim).create(user=user, role=roles.RADIOLOGIST)
    return {"membership_id": membership.pk}, [user.email]


@sample("clinic:invitation_revoke", "clinic:invitation_renew")
def _invitation(victim):
    from tenants import roles
    from tenants.models import Invitation

    invitation, _ = Invitation.issue(tenant=victim, email="invitee@victim.test", role=roles.VIEWER)
    return {"invitation_id": invitation.pk}, [invitation.email]


@sample("clinic:token_revoke")
def _api_token(victim):
    from tenants.models import ApiToken

    token, _ = ApiToken.issue(tenant=victim, name="victim modality gateway", scopes=["upload"])
    return {"token_id": token.pk}, [token.name, token.token_hint]


@sample("archive:upload_file", "archive:upload_ingest")
def _upload(victim):
    from archive.upload.store import upload_create

    upload = upload_create(tenant=victim, length=4, metadata={"filename": "Victim^File.dcm"},
                           owner=f"user:{tenant_owner(victim).pk}")
    upload.data_path.write_bytes(b"DICM")
    return {"upload_id": upload.id}, ["Victim^File"]


@sample("archive:upload_batch_close")
def _upload_batch(victim):
    from archive.upload.store import batch_create

    return {"batch_id": batch_create(tenant=victim, owner=f"user:{tenant_owner(victim).pk}")}


def _discover_app_samples() -> None:
    """Merge `SAMPLES` from every tests/<app>/isolation_samples.py."""
    tests_dir = Path(__file__).parent
    for info in pkgutil.iter_modules([str(tests_dir)]):
        if info.ispkg and (tests_dir / info.name / "isolation_samples.py").exists():
            module = importlib.import_module(f"tests.{info.name}.isolation_samples")
            for name, factory in module.SAMPLES.items():
                assert name not in SAMPLES, f"two samples registered for URL name {name}"
                SAMPLES[name] = factory


_discover_app_samples()


# --- enumerating the project's URL patterns ---------------------------------------------

@dataclass(frozen=True)
class Route:
    name: str | None  # namespaced ("clinic:members"), None if the pattern has no name
    namespace: str
    route: str  # the full pattern, readable ("t/<slug:tenant_slug>/members/")
    params: frozenset[str]

    @property
    def key(self) -> str:
        return self.name or f"{self.namespace}:<unnamed {self.route}>"

    @property
    def is_clinic(self) -> bool:
        return TENANT_KWARG in self.params

    @property
    def object_params(self) -> frozenset[str]:
        return self.params - {TENANT_KWARG} - set(GENERIC_PARAMS)


def walk_patterns(patterns=None, prefix="", namespaces=(), params=frozenset()) -> Iterator[Route]:
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        here = params | frozenset(pattern.pattern.regex.groupindex)
        if isinstance(pattern, URLResolver):
            inner = namespaces + ((pattern.namespace,) if pattern.namespace else ())
            yield from walk_patterns(pattern.url_patterns, prefix + str(pattern.pattern), inner, here)
        else:
            name = ":".join(namespaces + (pattern.name,)) if pattern.name else None
            yield Route(name, ":".join(namespaces), prefix + str(pattern.pattern), here)


def public_reason(route: Route) -> str | None:
    for key, reason in PUBLIC_URLS.items():
        if key == route.key or (key.endswith(":*") and route.key.startswith(key[:-1])):
            return reason
    return None


ALL_ROUTES = sorted(set(walk_patterns()), key=lambda r: (r.route, r.key))
CLINIC_ROUTES = [r for r in ALL_ROUTES if r.is_clinic]


def test_every_url_is_a_clinic_url_or_allow_listed():
    problems = []
    for route in ALL_ROUTES:
        if route.is_clinic:
            if route.name is None:
                problems.append(f"clinic URL {route.route} has no name: name it so it can be sampled")
            elif route.object_params and route.name not in SAMPLES:
                problems.append(f"add a sample for URL name {route.name} "
                                f"(params {sorted(route.object_params)}) in {__name__}.SAMPLES "
                                "or tests/<app>/isolation_samples.py")
        elif route.route.startswith("t/"):
            problems.append(f"{route.route} is under t/ but has no <slug:{TENANT_KWARG}>")
        elif public_reason(route) is None:
            problems.append(f"URL {route.key} ({route.route}) is outside /t/<slug>/: move it under a "
                            "clinic, or add it to PUBLIC_URLS with the reason it needs no clinic")
    assert not problems, "\n".join(problems)


def test_allow_list_has_no_stale_entries():
    keys = {r.key for r in ALL_ROUTES}
    stale = [k for k in PUBLIC_URLS if not k.endswith(":*") and k not in keys]
    stale += [k for k in PUBLIC_URLS if k.endswith(":*") and not any(x.startswith(k[:-1]) for x in keys)]
    assert not stale, f"PUBLIC_URLS names URLs that no longer exist: {stale}"
    stale_samples = set(SAMPLES) - {r.name for r in CLINIC_ROUTES}
    assert not stale_samples, f"samples for URL names that no longer exist: {sorted(stale_samples)}"


# --- the walk -----------------------------------------------------------------------------

@dataclass
class World:
    victim: object
    attacker: object
    anonymous: Client
    attacker_owner: Client
    attacker_token: Client
    victim_owner: Client
    secrets: list[str]


@pytest.fixture
def world(make_tenant, make_token) -> World:
    victim = make_tenant("victim", name="Vanishing Valley Imaging")
    attacker = make_tenant("mallory", name="Mallory Radiology")

    def owner_client(tenant):
        client, owner = Client(), tenant_owner(tenant)
        client.force_login(owner)
        _verify_second_factor(client, owner)
        return client

    return World(
        victim=victim, attacker=attacker, anonymous=Client(),
        attacker_owner=owner_client(attacker),
        attacker_token=Client(HTTP_AUTHORIZATION=f"Bearer {make_token(attacker)}"),
        victim_owner=owner_client(victim),
        secrets=[victim.name, tenant_owner(victim).email],
    )


def build_kwargs(route: Route, victim) -> tuple[dict, list[str]]:
    generic = {k: v for k, v in GENERIC_PARAMS.items() if k in route.params}
    if not route.object_params:
        return generic, []
    if route.name not in SAMPLES:
        pytest.fail(f"add a sample for URL name {route.name} (params {sorted(route.object_params)})")
    made = SAMPLES[route.name](victim)
    kwargs, secrets = made if isinstance(made, tuple) else (made, [])
    missing = route.object_params - set(kwargs)
    if missing:
        pytest.fail(f"the sample for URL name {route.name} gives no {sorted(missing)}")
    values = {k: str(v) for k, v in kwargs.items() if k in route.params}
    values.update(generic)
    return values, [str(s) for s in secrets if str(s)]


def url_for(route: Route, slug: str, kwargs: dict) -> str:
    return reverse(route.name, kwargs={TENANT_KWARG: slug, **kwargs})


def body_of(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def send(client: Client, method: str, url: str):
    return getattr(client, method)(url)


def assert_no_leak(response, secrets, who, method, url):
    body = body_of(response).decode("utf-8", "replace")
    leaked = [s for s in secrets if s in body]
    assert not leaked, f"{who} {method.upper()} {url} -> {response.status_code} leaked {leaked}"


@pytest.mark.parametrize("route", CLINIC_ROUTES, ids=lambda r: f"{r.name}|{r.route}")
def test_clinic_url_is_isolated(route: Route, world: World):
    if route.name is None:
        pytest.fail(f"clinic URL {route.route} has no name: name it so it can be sampled")
    kwargs, sample_secrets = build_kwargs(route, world.victim)
    secrets = world.secrets + sample_secrets
    victim_url = url_for(route, world.victim.slug, kwargs)
    login_url = resolve_url(settings.LOGIN_URL)

    for method in METHODS:
        # (a) anonymous: sent to log in (browser) or 401 (API), whatever the method.
        response = send(world.anonymous, method, victim_url)
        if response.status_code == 302:
            assert response["Location"].startswith(login_url), \
                f"anonymous {method.upper()} {victim_url} redirected to {response['Location']}"
        else:
            assert response.status_code == 401, \
                f"anonymous {method.upper()} {victim_url} -> {response.status_code}, expected 302 to login or 401"
        assert_no_leak(response, secrets, "anonymous", method, victim_url)

        # (b), (c): another clinic's owner and API token see no such clinic.
        for who, client in (("other clinic's owner", world.attacker_owner),
                            ("other clinic's API token", world.attacker_token)):
            response = send(client, method, victim_url)
            assert response.status_code == 404, \
                f"{who} {method.upper()} {victim_url} -> {response.status_code}, expected 404"
            assert_no_leak(response, secrets, who, method, victim_url)

    if route.object_params:
        # (d) the victim's object ids inside the attacker's own clinic.
        idor_url = url_for(route, world.attacker.slug, kwargs)
        for who, client in (("other clinic's owner", world.attacker_owner),
                            ("other clinic's API token", world.attacker_token)):
            for method in METHODS:
                response = send(client, method, idor_url)
                status = response.status_code
                if method == "options":
                    # Metadata about the endpoint (DRF, Django's Allow header), answered the
                    # same whether the object exists or not: only the body is checked.
                    ok = status < 500
                elif method in ("get", "head") and who == "other clinic's owner":
                    ok = status in (404, 405)
                else:  # a token may lack the permission (403) before any lookup
                    ok = status >= 400
                assert ok, (f"{who} {method.upper()} {idor_url} (the victim's object in their own "
                            f"clinic) -> {status}; another clinic's object must be a 404")
                assert_no_leak(response, secrets, who, method, idor_url)

    # Control, last: the victim's owner reaches the URL, so the 404s above mean isolation
    # and not a broken sample -- and the attacker's requests did not remove the object.
    response = world.victim_owner.get(victim_url)
    assert response.status_code != 404, \
        f"the victim's own owner got 404 for {victim_url}: the sample for {route.name} is wrong, or the object was removed"
    assert response.status_code < 500
