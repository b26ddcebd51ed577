"""Share links from end to end on the server: made from the study page or the API, the
link shown once and stored hashed, emailed without the code, opened with an access code
or a birth date (wrong tries locked out), a session that reads exactly the shared studies
through the share's own DICOMweb root, and revocation and expiry that end it at once."""

import datetime as dt
import json
import logging
import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from archive.sharing.models import Share, token_hash
from cloudpacs.log_redaction import RedactShareLinks
from tenants import roles
from tenants.audit import AuditEvent
from tests.archive.dicomweb_data import ingest_datasets
from tests.dicom_factory import make_ct_series


def _study(tenant, patient_id="MRN-S1", name="Share^Sam", birth="19650304", n=2):
    series = make_ct_series(n, 16, 16, patient_name=name, patient_id=patient_id, birth_date=birth)
    instances = ingest_datasets(tenant, series)
    return instances[0].study, series


def _create(client, tenant, study, **fields) -> tuple[str, str]:
    """Fill the share form; the created page's link and access code."""
    data = {"scope": "study", "expires_in_days": 30, "access": "code", "access_code": "",
            "recipient_name": "Dr Ref", "recipient_email": "ref@example.org", "message": "For your review",
            **fields}
    response = client.post(reverse("archive:share_new", kwargs={"tenant_slug": tenant.slug, "pk": study.pk}), data)
    assert response.status_code == 200, response.content[:500]
    body = response.content.decode()
    url = re.search(r'id="share-url" type="text" readonly value="([^"]+)"', body).group(1)
    code = re.search(r'id="access-code">([^<]+)<', body)
    return url, code.group(1) if code else ""


def _path(url: str) -> str:
    return url.split("testserver", 1)[1]


def _open(url: str, code: str = "", client: Client | None = None) -> tuple[Client, str]:
    """A referrer's browser: open the link, pass the check; the share page's path."""
    client = client or Client()
    response = client.post(_path(url), {"answer": code}) if code else client.get(_path(url))
    assert response.status_code == 302, response.status_code
    return client, response["Location"]


@pytest.fixture
def sharer(login, make_member, tenant):
    return login(make_member(tenant, roles.RADIOLOGIST))


def test_link_is_shown_once_stored_hashed_and_emailed_without_the_code(sharer, tenant):
    study, _ = _study(tenant)
    url, code = _create(sharer, tenant, study)
    token = url.rsplit("/s/", 1)[1]
    assert len(token) >= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", token)  # 192 bits, URL-safe
    share = Share.objects.for_tenant(tenant).get()
    assert share.token_hash == token_hash(token)
    assert token not in json.dumps(list(Share.objects.for_tenant(tenant).values()), default=str)
    assert re.fullmatch(r"\d{8}", code) and share.access_code_matches(code) and code not in share.access_code_hash
    [email] = mail.outbox
    assert email.to == ["ref@example.org"] and url in email.body and code not in email.body
    assert "For your review" in email.body
    event = AuditEvent.objects.for_tenant(tenant).get(action="share.created")
    assert event.detail["studies"] == [study.pk]


def test_referrer_opens_with_the_code_and_reads_only_the_shared_study(sharer, tenant, other_tenant):
    study, series = _study(tenant)
    other, other_series = _study(tenant, patient_id="MRN-OTHER", name="Other^Olga")
    foreign, foreign_series = _study(other_tenant, patient_id="MRN-F", name="Foreign^Fay")
    url, code = _create(sharer, tenant, study)
    referrer = Client()
    assert referrer.get(_path(url)).status_code == 200  # the access check form
    referrer, page = _open(url, code, referrer)
    assert page == reverse("sharing:page", kwargs={"public_id": Share.objects.for_tenant(tenant).get().public_id})
    assert "/s/v/" in page and url.rsplit("/", 1)[1] not in page  # no token in the page's URL
    body = referrer.get(page).content.decode()
    assert "Sam Share" in body or "Share, Sam" in body
    root = page + "dicomweb"
    found = referrer.get(f"{root}/studies", HTTP_ACCEPT="application/dicom+json").json()
    assert [r["0020000D"]["Value"][0] for r in found] == [study.study_instance_uid]
    # Everything of the shared study a viewer reads...
    s, se, i = series[0].StudyInstanceUID, series[0].SeriesInstanceUID, series[0].SOPInstanceUID
    for rest in [f"studies/{s}/metadata", f"studies/{s}/series", f"studies/{s}/series/{se}/metadata",
                 f"studies/{s}/series/{se}/instances/{i}/frames/1", f"studies/{s}/thumbnail"]:
        assert referrer.get(f"{root}/{rest}").status_code == 200, rest
    # ...and nothing of another study of the clinic, or of another clinic: 404.
    for outside in (other_series[0], foreign_series[0]):
        s2, se2, i2 = outside.StudyInstanceUID, outside.SeriesInstanceUID, outside.SOPInstanceUID
        for rest in [f"studies/{s2}/metadata", f"studies/{s2}/series", f"studies/{s2}/series/{se2}/metadata",
                     f"studies/{s2}/series/{se2}/instances/{i2}/frames/1", f"studies/{s2}/thumbnail",
                     f"studies/{s2}/series/{se2}/instances/{i2}"]:
            response = referrer.get(f"{root}/{rest}")
            assert response.status_code == 404, (rest, response.status_code)
            assert b"Olga" not in response.content and b"Fay" not in response.content
        found = referrer.get(f"{root}/studies", {"StudyInstanceUID": s2}).json()
        assert found == []
    # Downloads were not allowed: the instances themselves are refused.
    assert referrer.get(f"{root}/studies/{s}").status_code == 403
    # The clinic's own root stays closed to the referrer.
    assert referrer.get(f"/t/{tenant.slug}/dicomweb/studies").status_code == 401
    actions = list(AuditEvent.objects.for_tenant(tenant).filter(actor_type="share").values_list("action", flat=True))
    assert "share.opened" in actions and "share.page_viewed" in actions and "dicomweb.retrieve" in actions


def test_download_allowed_lets_the_referrer_retrieve_instances(sharer, tenant):
    study, series = _study(tenant)
    url, code = _create(sharer, tenant, study, allow_download="on")
    referrer, page = _open(url, code)
    response = referrer.get(f"{page}dicomweb/studies/{series[0].StudyInstanceUID}")
    assert response.status_code == 200 and response["Content-Type"].startswith("multipart/related")


def test_wrong_codes_lock_the_link_and_even_the_right_code_waits(sharer, tenant, settings):
    study, _ = _study(tenant)
    url, code = _create(sharer, tenant, study)
    referrer = Client()
    for _ in range(settings.SHARE_MAX_FAILURES - 1):
        assert referrer.post(_path(url), {"answer": "00000000"}).status_code == 403
    assert referrer.post(_path(url), {"answer": "00000000"}).status_code == 429
    assert referrer.post(_path(url), {"answer": code}).status_code == 429
    share = Share.objects.for_tenant(tenant).get()
    assert share.locked_until > timezone.now()
    refused = AuditEvent.objects.for_tenant(tenant).filter(action="share.access_refused").order_by("seq")
    # Each wrong answer, the one that locked, and the try made while locked: all audited.
    assert refused.count() == settings.SHARE_MAX_FAILURES + 1
    assert refused[settings.SHARE_MAX_FAILURES - 1].detail["locked"] is True
    assert refused.last().detail["while_locked"] is True
    Share.objects.for_tenant(tenant).update(locked_until=timezone.now() - dt.timedelta(seconds=1))
    _open(url, code, referrer)


def test_birth_date_check(sharer, tenant):
    study, _ = _study(tenant, birth="19650304")
    url, _ = _create(sharer, tenant, study, access="birth_date")
    assert Client().post(_path(url), {"answer": "1965-03-05"}).status_code == 403
    _open(url, "1965-03-04")


def test_a_patient_share_shows_the_priors(sharer, tenant):
    study, _ = _study(tenant, patient_id="MRN-P")
    prior, _ = _study(tenant, patient_id="MRN-P")
    unrelated, _ = _study(tenant, patient_id="MRN-Q", name="Else^Eve")
    url, code = _create(sharer, tenant, study, scope="patient")
    referrer, page = _open(url, code)
    found = {r["0020000D"]["Value"][0] for r in referrer.get(f"{page}dicomweb/studies").json()}
    assert found == {study.study_instance_uid, prior.study_instance_uid}


def test_revoking_ends_access_at_once(sharer, tenant):
    study, series = _study(tenant)
    url, code = _create(sharer, tenant, study)
    referrer, page = _open(url, code)
    metadata = f"{page}dicomweb/studies/{series[0].StudyInstanceUID}/metadata"
    assert referrer.get(metadata).status_code == 200
    share = Share.objects.for_tenant(tenant).get()
    response = sharer.post(reverse("archive:share_revoke", kwargs={"tenant_slug": tenant.slug, "share_id": share.pk}))
    assert response.status_code == 302
    assert referrer.get(metadata).status_code == 404
    # The page this browser had open says why it closed (a stranger gets a plain 404).
    page_now = referrer.get(page)
    assert page_now.status_code == 410 and b"withdrawn" in page_now.content and b"Sam" not in page_now.content
    assert Client().get(page).status_code == 404
    gone = referrer.get(_path(url))
    assert gone.status_code == 410 and b"withdrawn" in gone.content and b"Sam" not in gone.content
    assert AuditEvent.objects.for_tenant(tenant).filter(action="share.revoked").count() == 1


def test_expired_link_shows_a_clear_page_and_extending_reopens_it(sharer, tenant):
    study, _ = _study(tenant)
    url, code = _create(sharer, tenant, study)
    Share.objects.for_tenant(tenant).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    response = Client().post(_path(url), {"answer": code})
    assert response.status_code == 410 and b"expired" in response.content and b"Sam" not in response.content
    share = Share.objects.for_tenant(tenant).get()
    sharer.post(reverse("archive:share_extend", kwargs={"tenant_slug": tenant.slug, "share_id": share.pk}),
                {"days": "7"})
    share.refresh_from_db()
    assert share.is_active and share.expires_at < timezone.now() + dt.timedelta(days=7, minutes=1)
    _open(url, code)


def test_unknown_link_and_no_session_give_nothing(tenant, sharer):
    assert Client().get("/s/not-a-real-token").status_code == 404
    study, series = _study(tenant)
    url, code = _create(sharer, tenant, study)
    _, page = _open(url, code)
    stranger = Client()  # has the page's URL, not the session
    assert stranger.get(page).status_code == 404
    assert stranger.get(f"{page}dicomweb/studies").status_code == 404
    assert stranger.get(f"{page}viewer/app-config.js").status_code == 404
    assert stranger.get(f"{page}dicomweb/studies/{series[0].StudyInstanceUID}/metadata").status_code == 404


def test_share_viewer_config_points_at_the_share_root(sharer, tenant):
    study, _ = _study(tenant)
    url, code = _create(sharer, tenant, study)
    referrer, page = _open(url, code)
    config = referrer.get(f"{page}viewer/app-config.js").content.decode()
    assert f'"qidoRoot":"http://testserver{page}dicomweb"' in config
    assert f"/t/{tenant.slug}/" not in config
    assert f'href: "{page}"' in config  # OHIF's header links back to the share's page


def test_share_link_tokens_never_reach_the_logs():
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Not Found: %s", ("/s/SeCrEt-ToKeN",),
                               None)
    RedactShareLinks().filter(record)
    assert "SeCrEt" not in record.getMessage() and "/s/[link]" in record.getMessage()
    # Invitation and password reset links are as secret.
    for path, shown in (("/invite/SeCrEt-ToKeN/", "/invite/[link]/"),
                        ("/password-reset/MQ/SeCrEt-ToKeN/", "/password-reset/MQ/[link]/")):
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '"GET %s HTTP/1.1" 200', (path,), None)
        RedactShareLinks().filter(record)
        assert "SeCrEt" not in record.getMessage() and shown in record.getMessage()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "GET %s", ("/password-reset/MQ/set-password/",), None)
    RedactShareLinks().filter(record)
    assert record.getMessage() == "GET /password-reset/MQ/set-password/"
    from django.conf import settings

    assert "share_links" in settings.LOGGING["handlers"]["console"]["filters"]


def test_study_page_lists_shares_and_who_looked(sharer, tenant):
    study, series = _study(tenant)
    url, code = _create(sharer, tenant, study)
    referrer, page = _open(url, code)
    referrer.get(f"{page}dicomweb/studies/{series[0].StudyInstanceUID}/metadata")
    body = sharer.get(reverse("archive:study", kwargs={"tenant_slug": tenant.slug, "pk": study.pk})).content.decode()
    assert 'id="shares"' in body and "Dr Ref" in body and "opened 1 time" in body
    assert "share.opened" in body and "dicomweb.retrieve" in body and "127.0.0.1" in body


def test_viewer_role_cannot_share(login, make_member, tenant):
    study, _ = _study(tenant)
    viewer = login(make_member(tenant, roles.VIEWER))
    assert viewer.get(reverse("archive:share_new", kwargs={"tenant_slug": tenant.slug, "pk": study.pk})).status_code == 403


# --- the API --------------------------------------------------------------------------------

def _api(tenant, token, method="get", path="", **kwargs):
    client = Client()
    return getattr(client, method)(f"/t/{tenant.slug}/api/shares{path}", HTTP_AUTHORIZATION=f"Bearer {token}",
                                   content_type="application/json", **kwargs)


def test_api_creates_lists_and_revokes_with_the_share_scope(tenant, make_token):
    """A token with scopes read and share (and so archive.download, as downloads are allowed)."""
    study, series = _study(tenant)
    token = make_token(tenant, scopes=("read", "share"))
    response = _api(tenant, token, "post", data={
        "study_instance_uid": study.study_instance_uid, "expires_in_days": 7, "access_code": "48151623",
        "allow_download": True, "recipient_email": "ref@example.org"})
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["url"].startswith("http://testserver/s/") and created["access"] == "code"
    _open(created["url"], "48151623")
    listed = _api(tenant, token).json()
    assert [s["id"] for s in listed] == [created["id"]] and "url" not in listed[0]
    assert _api(tenant, token, "delete", f"/{created['id']}").json()["status"] == "revoked"
    assert Client().post(_path(created["url"]), {"answer": "48151623"}).status_code == 410


def test_api_refuses_other_scopes_bad_uids_and_other_clinics(tenant, other_tenant, make_token):
    study, _ = _study(tenant)
    foreign, _ = _study(other_tenant, patient_id="MRN-F")
    read_only = make_token(tenant, scopes=("read",))
    body = {"study_instance_uid": study.study_instance_uid, "access_code": "48151623"}
    assert _api(tenant, read_only, "post", data=body).status_code == 403
    token = make_token(tenant, scopes=("read", "share"))
    assert _api(tenant, token, "post", data={**body, "study_instance_uid": "1.2.x"}).status_code == 400
    assert _api(tenant, token, "post", data={**body, "access_code": "123"}).status_code == 400
    assert _api(tenant, token, "post", data={**body, "study_instance_uid": foreign.study_instance_uid}).status_code == 404
    assert Share.objects.for_tenant(tenant).count() == 0


def test_create_api_token_accepts_the_share_scope(tenant, capsys):
    from django.core.management import call_command

    call_command("create_api_token", tenant.slug, "--name", "N", "--scopes", "upload,read,share")
    from tenants.models import ApiToken

    assert sorted(ApiToken.objects.for_tenant(tenant).get(name="N").scopes) == ["read", "share", "upload"]


def test_each_further_lockout_lasts_twice_as_long(sharer, tenant, settings):
    study, _ = _study(tenant)
    url, code = _create(sharer, tenant, study)
    referrer = Client()
    lengths = []
    for _ in range(2):
        for _ in range(settings.SHARE_MAX_FAILURES):
            referrer.post(_path(url), {"answer": "00000000"})
        share = Share.objects.for_tenant(tenant).get()
        lengths.append(share.locked_until - timezone.now())
        Share.objects.for_tenant(tenant).update(locked_until=timezone.now() - dt.timedelta(seconds=1))
    assert dt.timedelta(minutes=settings.SHARE_LOCKOUT_MINUTES - 1) < lengths[0] <= dt.timedelta(
        minutes=settings.SHARE_LOCKOUT_MINUTES)
    assert lengths[1] > lengths[0] * 1.9


def test_one_address_has_a_limit_across_all_links(sharer, tenant, settings):
    settings.SHARE_IP_MAX_FAILURES = 3
    links = [_create(sharer, tenant, _study(tenant, patient_id=f"MRN-IP{i}")[0]) for i in range(2)]
    referrer = Client()
    for _ in range(3):
        assert referrer.post(_path(links[0][0]), {"answer": "00000000"}).status_code == 403
    # Another link, the right code: this address has used its tries for the hour.
    assert referrer.post(_path(links[1][0]), {"answer": links[1][1]}).status_code == 429
    assert Client(REMOTE_ADDR="10.9.9.9").post(_path(links[1][0]), {"answer": links[1][1]}).status_code == 302


def test_a_patient_share_needs_a_real_patient_id_and_the_same_person(sharer, tenant):
    anon, _ = _study(tenant, patient_id="", name="Alpha^Ann")
    _study(tenant, patient_id="", name="Beta^Bob")
    response = sharer.post(reverse("archive:share_new", kwargs={"tenant_slug": tenant.slug, "pk": anon.pk}),
                           {"scope": "patient", "expires_in_days": 30, "access": "code", "access_code": ""})
    assert response.status_code == 200 and b"no usable Patient ID" in response.content
    assert not Share.objects.for_tenant(tenant).exists()
    # One ID typed for two people (other name and birth date): not the same patient.
    mine, _ = _study(tenant, patient_id="MRN-TWICE", name="Same^Sam", birth="19700101")
    _study(tenant, patient_id="MRN-TWICE", name="Other^Otto", birth="19800101")
    url, code = _create(sharer, tenant, mine, scope="patient")
    assert [s.pk for s in Share.objects.for_tenant(tenant).get().shared_studies()] == [mine.pk]


def test_sharing_gives_no_more_than_its_maker_may_read(tenant, make_token):
    study, _ = _study(tenant)
    share_only = make_token(tenant, scopes=("share",))
    body = {"study_instance_uid": study.study_instance_uid}
    assert _api(tenant, share_only, "post", data=body).status_code == 403
    read_share = make_token(tenant, scopes=("read", "share"))
    assert _api(tenant, read_share, "post", data=body).status_code == 201
    from archive.sharing.services import may_create
    from tenants.models import ApiToken
    from tenants.principal import Principal

    [token] = [t for t in ApiToken.objects.for_tenant(tenant) if list(t.scopes) == ["share"]]
    assert may_create(Principal.for_token(token), allow_download=False)
    # No role has share without download today; the rule holds for any principal.
    viewer_who_shares = Principal(kind="user", perms=frozenset({"archive.view", "archive.share"}))
    assert may_create(viewer_who_shares, allow_download=True)
    assert may_create(viewer_who_shares, allow_download=False) is None


def test_api_makes_an_access_code_unless_told_otherwise(tenant, make_token):
    study, _ = _study(tenant)
    token = make_token(tenant, scopes=("read", "share"))
    created = _api(tenant, token, "post", data={"study_instance_uid": study.study_instance_uid}).json()
    assert created["access"] == "code" and re.fullmatch(r"\d{8}", created["access_code"])
    assert Client().get(_path(created["url"])).status_code == 200  # the check form, not the images
    _open(created["url"], created["access_code"])
    listed = _api(tenant, token).json()
    assert "access_code" not in listed[0]


def test_email_is_plain_text_and_never_printed_to_the_logs_in_production(sharer, tenant, settings):
    study, _ = _study(tenant)
    _create(sharer, tenant, study, recipient_name="Dr O'Brien & Co")
    [email] = mail.outbox
    assert "Dr O'Brien & Co" in email.body and "&amp;" not in email.body
    settings.PRODUCTION = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    url, _ = _create(sharer, tenant, study)
    assert url and len(mail.outbox) == 1  # made and shown, not emailed


def test_a_mail_server_failure_still_shows_the_link(sharer, tenant, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens
    study, _ = _study(tenant)
    response = sharer.post(reverse("archive:share_new", kwargs={"tenant_slug": tenant.slug, "pk": study.pk}),
                           {"scope": "study", "expires_in_days": 30, "access": "code", "access_code": "",
                            "recipient_email": "ref@example.org"})
    assert response.status_code == 200 and b'id="share-url"' in response.content
    assert b"No email was sent" in response.content


def test_nothing_a_share_shows_is_cached_for_reuse(sharer, tenant):
    study, series = _study(tenant)
    url, code = _create(sharer, tenant, study)
    referrer, page = _open(url, code)
    thumb = referrer.get(f"{page}dicomweb/studies/{series[0].StudyInstanceUID}/thumbnail", HTTP_ACCEPT="image/jpeg")
    assert thumb.status_code == 200 and thumb["Cache-Control"] == "private, no-cache"


def test_sending_the_share_form_again_makes_no_second_share(sharer, tenant):
    study, _ = _study(tenant)
    url = reverse("archive:share_new", kwargs={"tenant_slug": tenant.slug, "pk": study.pk})
    nonce = re.search(r'name="nonce" value="([0-9a-f]+)"', sharer.get(url).content.decode()).group(1)
    data = {"nonce": nonce, "scope": "study", "expires_in_days": 30, "access": "code", "access_code": ""}
    assert sharer.post(url, data).status_code == 200
    again = sharer.post(url, data)  # a reload of the created page sends the form again
    assert again.status_code == 302 and again["Location"].endswith("/shares/")
    assert Share.objects.for_tenant(tenant).count() == 1


def test_the_handout_of_a_deidentified_share_names_no_patient(sharer, tenant):
    study, _ = _study(tenant)
    response = sharer.post(reverse("archive:share_new", kwargs={"tenant_slug": tenant.slug, "pk": study.pk}),
                           {"scope": "study", "expires_in_days": 30, "access": "code", "access_code": "",
                            "deidentify": "on"})
    handout = response.content.decode().split('class="handout"', 1)[1]
    assert "De-identified images" in handout and "Sam" not in handout and "Share" not in handout
