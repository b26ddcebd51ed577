"""Every read of PHI is audited, proven by walking EVERY URL of the project.

Each pattern from `get_resolver()` (walked as tests/test_isolation_walker.py does) is in
PHI_READS, with the audit action its door writes (tenants/phi_audit.py), or in NO_PHI, with
the reason it returns no patient data. A URL in neither list fails: a new route must be
classified before it ships.

For each PHI route the walker sends a real request, as the clinic's owner, to a URL built
from the isolation walker's samples, in a clinic that also holds a seed study; it fails
unless the answer is a success and exactly one event of the door's action, by that owner,
was appended. Each no-PHI clinic URL is requested too: its answer must not show the seed
patient or the sample's patient, so the NO_PHI reasons are checked and not only claimed.
"""

import re
from dataclasses import dataclass

import pytest
from django.test import Client

from tests.conftest import _verify_second_factor, tenant_owner
from tests.test_isolation_walker import ALL_ROUTES, Route, body_of, build_kwargs, url_for


@dataclass(frozen=True)
class PhiRead:
    action: str  # the audit action the door writes
    method: str = "get"  # "post": an empty JSON body, every filter left out


SEARCH = PhiRead("dicomweb.search")
RETRIEVE = PhiRead("dicomweb.retrieve")

# URL name -> how to read PHI there and the event it must write.
PHI_READS: dict[str, PhiRead] = {
    # QIDO-RS: patients' names, IDs and dates as DICOM JSON.
    "archive:dicomweb_studies": SEARCH,
    "archive:dicomweb_all_series": SEARCH,
    "archive:dicomweb_all_instances": SEARCH,
    "archive:dicomweb_study_series": SEARCH,
    "archive:dicomweb_study_instances": SEARCH,
    "archive:dicomweb_series_instances": SEARCH,
    # WADO-RS: the instances themselves, their metadata, pixels and renderings.
    "archive:dicomweb_study": RETRIEVE,
    "archive:dicomweb_series": RETRIEVE,
    "archive:dicomweb_instance": RETRIEVE,
    "archive:dicomweb_study_metadata": RETRIEVE,
    "archive:dicomweb_series_metadata": RETRIEVE,
    "archive:dicomweb_instance_metadata": RETRIEVE,
    "archive:dicomweb_frames": RETRIEVE,
    "archive:dicomweb_bulkdata": RETRIEVE,
    "archive:dicomweb_instance_rendered": RETRIEVE,
    "archive:dicomweb_frames_rendered": RETRIEVE,
    "archive:dicomweb_study_thumbnail": RETRIEVE,
    "archive:dicomweb_series_thumbnail": RETRIEVE,
    "archive:dicomweb_instance_thumbnail": RETRIEVE,
    # Pages and the clinic API: lists and details of patients' studies.
    "archive:worklist": PhiRead("worklist.viewed"),
    "archive:study": PhiRead("study.viewed"),
    # The landing page lists the newest studies and the reading queue by patient name.
    "clinic:dashboard": PhiRead("dashboard.viewed"),
    "archive:api_study_list": PhiRead("worklist.viewed"),
    # POST only: the filters go in the body to keep names out of URLs; still a read.
    "archive:api_study_search": PhiRead("worklist.viewed", method="post"),
    "archive:api_study_detail": PhiRead("study.viewed"),
    "archive:retention_report": PhiRead("retention.report_viewed"),
    "archive:study_delete_request": PhiRead("study.viewed"),
    "archive:study_thumbnails": PhiRead("study.viewed"),
    "archive:share_new": PhiRead("study.viewed"),
    "archive:study_download": PhiRead("study.downloaded"),
    "archive:report_pdf": PhiRead("report.viewed"),
    "archive:clinic_export_download": PhiRead("clinic.export_downloaded"),
    "archive:shares": PhiRead("shares.viewed"),
    # Who a study was disclosed to (recipients) is itself sensitive: reading it is audited.
    "archive:api_shares": PhiRead("shares.viewed"),
    "archive:api_share": PhiRead("shares.viewed"),
    # The audit log: events' details may name patients (tenants/views/audit.py).
    "clinic:audit": PhiRead("audit.viewed"),
    "clinic:audit_export": PhiRead("audit.exported"),
}

POST_ONLY = "a POST-only action: GET is refused and nothing is read"

# URL names (":*" = a whole namespace) that return no PHI, each with the reason.
NO_PHI: dict[str, str] = {
    "admin:*": "platform operators' admin: no registered model shows PHI fields (tests/tenants/test_admin.py)",
    "healthz": "liveness probe: says nothing about any clinic",
    "stripe_webhook": "Stripe's events in: customer, card and invoice data, no patient data",
    "billing:page": "charges show the StudyInstanceUID's tail, modality, amount: no patient attributes",
    "billing:card": "the card form (Stripe.js); no patient data",
    "billing:card_saved": "records a card; redirects",
    "billing:charges_csv": "StudyInstanceUIDs, modalities, sizes and amounts: no patient attributes",
    "billing:details": "the clinic's billing email and address; redirects",
    "readyz": "readiness probe: database, broker and storage up or down",
    "api-schema": "OpenAPI schema: endpoints, no data",
    "api-docs": "rendered API documentation: endpoints, no data",
    "home": "redirects to one of the user's clinics, or lists them by name",
    "login": "the sign-in form",
    "password_reset": "the forgot-password form",
    "password_reset_done": "a fixed page: check your email",
    "password_reset_confirm": "the new-password form",
    "password_reset_complete": "a fixed page: your password is set",
    "logout": "ends the session",
    "account": "the user's own password and second factor",
    "session_clock": "the seconds left before the automatic logoff",
    "2fa_setup": "enrolling the user's second factor",
    "2fa_verify": "verifying the user's second factor",
    "invitation_accept": "an invitee's sign-up: the clinic's name and the invited email",
    "clinic:members": "the clinic's staff and invitations, not patients",
    "clinic:member_role": POST_ONLY,
    "clinic:member_remove": POST_ONLY,
    "clinic:member_password_reset": POST_ONLY,
    "archive:report_action": POST_ONLY,
    "archive:study_correct": POST_ONLY,
    "archive:study_merge": POST_ONLY,
    "archive:series_move": POST_ONLY,
    "archive:correction_revert": POST_ONLY,
    "archive:report_assign": POST_ONLY,
    "archive:report_pdf_attach": POST_ONLY,
    "clinic:invitation_renew": POST_ONLY,
    "clinic:invitation_revoke": POST_ONLY,
    "clinic:settings": "the clinic's own name, AE title and security settings",
    "clinic:tokens": "API token names, scopes and hints",
    "clinic:token_revoke": POST_ONLY,
    "archive:dicom_peers": "the AE titles allowed to send",
    "archive:dicom_peer_remove": POST_ONLY,
    "archive:api_study_storage": "copy counts per storage region: no patient attributes",
    "archive:retention_settings": "the retention periods of the clinic's policy",
    "archive:storage_settings": "the clinic's storage choices and byte counts, no patient attributes",
    "archive:clinic_exports": "the clinic's exports: when, their state and size, no patient attributes",
    "archive:deletion_requests": ("study UIDs, reasons and admins, no patient names; each row "
                                  "links to the study page, which audits (archive/retention/views.py)"),
    "archive:deletion_approve": POST_ONLY,
    "archive:deletion_cancel": POST_ONLY,
    "archive:tombstone_purge": POST_ONLY,
    "archive:upload": "the upload form",
    "archive:share_revoke": POST_ONLY,
    "archive:share_extend": POST_ONLY,

    "archive:viewer": "OHIF's page: its scripts, no data (it reads through DICOMweb, which audits)",
    "archive:viewer_route": "OHIF's page, for a route inside the viewer",
    "archive:viewer_config": "OHIF's configuration: the clinic's DICOMweb root",
    "archive:viewer_open": ("a redirect to the viewer on the study; writes study.viewer_opened "
                            "(tests/e2e/test_viewer.py)"),
    "archive:upload_batch_start": POST_ONLY,
    "archive:upload_batch_close": "POST only: counts of the caller's own upload batch",
    "archive:upload_files": "tus: OPTIONS tells the protocol's limits, POST creates an upload",
    "archive:upload_file": "tus: HEAD tells the caller's own upload's offset; no GET",
    "archive:upload_ingest": "POST only: the results of ingesting the caller's own upload (a write)",
}


# The share links' URLs (archive/sharing/public_urls.py): reached with a share link, not as
# a member; tests/archive/test_share_scope_walker.py walks each, checks what it reads is
# only the share's and that every PHI read writes an event with the share as actor.
SHARE_DOORS: dict[str, str] = {"sharing:*": "walked by tests/archive/test_share_scope_walker.py"}


def _entry(table: dict, route: Route):
    for key, value in table.items():
        if key == route.key or (key.endswith(":*") and route.key.startswith(key[:-1])):
            return value
    return None


def test_every_url_is_classified_phi_or_not():
    problems = []
    for route in ALL_ROUTES:
        phi, reason = _entry(PHI_READS, route), _entry(NO_PHI, route)
        if phi is None and reason is None and _entry(SHARE_DOORS, route) is None:
            problems.append(f"URL {route.key} ({route.route}) is in neither PHI_READS nor NO_PHI of "
                            f"{__name__}: does it return patient data? If so, audit it with "
                            "tenants.phi_audit and list it in PHI_READS; if not, add it to NO_PHI "
                            "with the reason")
        elif phi is not None and reason is not None:
            problems.append(f"URL {route.key} is in both PHI_READS and NO_PHI")
    assert not problems, "\n".join(problems)


def test_lists_have_no_stale_entries():
    keys = {r.key for r in ALL_ROUTES}
    stale = [k for k in [*PHI_READS, *NO_PHI] if not k.endswith(":*") and k not in keys]
    stale += [k for k in NO_PHI if k.endswith(":*") and not any(x.startswith(k[:-1]) for x in keys)]
    assert not stale, f"entries for URLs that no longer exist: {stale}"


# --- the walk -----------------------------------------------------------------------------

# The seed: a study past retention (1999), so the worklist, the API list and the
# retention report have a patient to show.
SEED_MARKERS = ["Phiwalker", "PHIWALK-PID-1", "PHIWALK-ACC-1"]
UID = re.compile(r"[0-9.]+")


@dataclass
class Clinic:
    tenant: object
    owner: object
    client: Client


@pytest.fixture
def clinic(settings, make_tenant) -> Clinic:
    from tests.archive.study_rows import make_study

    # Password hashing is not under test here; argon2 would make the walk slow.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    tenant = make_tenant("phiwalk", name="Walker Imaging")
    make_study(tenant, name="Phiwalker^Patricia", patient_id="PHIWALK-PID-1",
               accession="PHIWALK-ACC-1", study_date="19990101")
    owner = tenant_owner(tenant)
    client = Client()
    client.force_login(owner)
    _verify_second_factor(client, owner)
    return Clinic(tenant, owner, client)


def _routes(table: dict) -> list[Route]:
    return [r for r in ALL_ROUTES if r.is_clinic and _entry(table, r) is not None]


def _last_seq(tenant) -> int:
    from tenants.audit import AuditEvent

    return AuditEvent.objects.for_tenant(tenant).order_by("-seq").values_list("seq", flat=True).first() or 0


@pytest.mark.parametrize("route", _routes(PHI_READS), ids=lambda r: r.name)
def test_phi_url_writes_an_audit_event(route: Route, clinic: Clinic):
    from tenants.audit import AuditEvent

    read = PHI_READS[route.name]
    kwargs, _ = build_kwargs(route, clinic.tenant)
    url = url_for(route, clinic.tenant.slug, kwargs)
    before = _last_seq(clinic.tenant)  # after the samples: their ingest writes events too

    if read.method == "post":
        response = clinic.client.post(url, "{}", content_type="application/json")
    else:
        response = clinic.client.get(url)
    body_of(response)  # a streamed answer runs to its end, as it would for a client

    assert 200 <= response.status_code < 300, \
        f"{read.method.upper()} {url} -> {response.status_code}: the sample for {route.name} reads nothing"
    events = list(AuditEvent.objects.for_tenant(clinic.tenant).filter(seq__gt=before).order_by("seq"))
    assert [(e.action, e.actor_id) for e in events] == [(read.action, str(clinic.owner.pk))], \
        (f"{read.method.upper()} {url} returned PHI and wrote {[e.action for e in events]}, "
         f"not one {read.action!r} event by the owner")


@pytest.mark.parametrize("route", _routes(NO_PHI), ids=lambda r: r.name)
def test_no_phi_url_shows_no_patient(route: Route, clinic: Clinic):
    kwargs, secrets = build_kwargs(route, clinic.tenant)
    url = url_for(route, clinic.tenant.slug, kwargs)
    response = clinic.client.get(url)
    assert response.status_code < 500, f"GET {url} -> {response.status_code}"
    # The sample's identifiers other than UIDs (NO_PHI allows UIDs: deletion requests).
    markers = SEED_MARKERS + [s for s in secrets if not UID.fullmatch(s)]
    body = body_of(response).decode("utf-8", "replace")
    shown = [m for m in markers if m in body]
    assert not shown, (f"GET {url} ({route.name}, listed in NO_PHI: {NO_PHI[route.name]}) shows "
                       f"{shown}: audit it with tenants.phi_audit and move it to PHI_READS")
