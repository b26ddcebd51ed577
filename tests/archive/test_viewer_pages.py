"""The viewer's server side: OHIF's page and per-request configuration, its files served
same-origin and compressed, the audited "View" link, the thumbnails page, the page a
server without the viewer shows, and the installer's refusals."""

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.templatetags.static import static
from django.test import Client
from django.urls import reverse

from archive.viewer import install
from tenants import roles
from tenants.audit import AuditEvent
from tests.archive.study_rows import ingest_study

ROOT = Path(__file__).resolve().parents[2]
needs_viewer = pytest.mark.skipif(not install.installed(), reason="the OHIF viewer is not installed (make viewer)")


def _url(name, tenant, **kwargs):
    return reverse(f"archive:{name}", kwargs={"tenant_slug": tenant.slug, **kwargs})


def _config(response) -> dict:
    body = response.content.decode()
    match = re.search(r"^window\.config = (\{.*\});$", body, re.M)
    return json.loads(match.group(1))


def test_configuration_points_at_the_clinics_own_dicomweb_root(login, make_member, tenant):
    client = login(make_member(tenant, roles.VIEWER))
    response = client.get(_url("viewer_config", tenant))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Cache-Control"] == "no-store"
    config = _config(response)
    source = config["dataSources"][0]["configuration"]
    root = f"http://testserver/t/{tenant.slug}/dicomweb"
    assert source["qidoRoot"] == source["wadoRoot"] == source["wadoUriRoot"] == root
    assert config["routerBasename"] == f"/t/{tenant.slug}/viewer"
    assert 'window.PUBLIC_URL = "/ohif/' in response.content.decode()
    # OHIF's header links back to the worklist, where the viewer was opened from.
    assert f'href: "/t/{tenant.slug}/studies/"' in response.content.decode()
    # Authorized by the session cookie: no token, header or secret in the configuration.
    assert "token" not in response.content.decode().lower()
    assert "Authorization" not in response.content.decode()


def test_without_a_session_there_is_no_configuration(client, tenant):
    response = client.get(_url("viewer_config", tenant))
    assert response.status_code == 302 and "/login/" in response["Location"]
    response = client.get(_url("viewer", tenant))
    assert response.status_code == 302 and "/login/" in response["Location"]


@needs_viewer
def test_viewer_page_loads_only_our_files_and_no_inline_script(login, make_member, tenant):
    client = login(make_member(tenant, roles.VIEWER))
    response = client.get(_url("viewer_route", tenant, rest="viewer"), {"StudyInstanceUIDs": "1.2.3"})
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.search(r"<script>(?!</script>)", html), "an inline script"
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    idle_script = static("js/idle.js")  # the automatic logoff's countdown, as on every page
    assert sources and all(s.startswith(install.files_url()) or s in (_url("viewer_config", tenant), idle_script)
                           for s in sources), sources
    assert idle_script in sources and 'data-idle-seconds="3600"' in html
    policy = response["Content-Security-Policy"]
    assert "'wasm-unsafe-eval'" in policy and "'unsafe-eval'" not in policy
    assert "http" not in policy  # no other origin is allowed anything
    # The site's other pages keep the strict policy.
    other = client.get(_url("worklist", tenant))["Content-Security-Policy"]
    assert "wasm-unsafe-eval" not in other and "unsafe-inline" not in other


@needs_viewer
def test_viewer_files_are_served_compressed_and_cached(client):
    bundle = next(install.viewer_dir().glob("app.bundle.*.js")).name
    response = client.get(f"{install.files_url()}{bundle}", HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert "max-age=315360000" in response["Cache-Control"] and "immutable" in response["Cache-Control"]
    body = gzip.decompress(b"".join(response.streaming_content))
    # Chunks load from the same prefix the files are served at.
    assert f'__webpack_require__.p = "{install.files_url()}";'.encode() in body
    # The demo deployment's configuration (a third-party server) is not installed.
    assert client.get(f"{install.files_url()}app-config.js").status_code == 404


def test_without_the_viewer_installed_the_page_says_how_to_install_it(login, make_member, tenant, settings, tmp_path):
    settings.VIEWER_DIR = str(tmp_path)
    client = login(make_member(tenant, roles.VIEWER))
    response = client.get(_url("viewer", tenant))
    assert response.status_code == 503
    assert "make viewer" in response.content.decode() and "npm" in response.content.decode()


def test_view_link_audits_the_study_and_opens_the_viewer_on_it(login, make_member, tenant):
    study = ingest_study(tenant)
    user = make_member(tenant, roles.VIEWER)
    response = login(user).get(_url("viewer_open", tenant, pk=study.pk))
    assert response.status_code == 302
    assert response["Location"] == f"/t/{tenant.slug}/viewer/viewer?StudyInstanceUIDs={study.study_instance_uid}"
    event = AuditEvent.objects.for_tenant(tenant).get(action="study.viewer_opened")
    assert (event.object_id, event.actor_label) == (str(study.pk), user.email)


def test_worklist_and_study_page_link_to_the_viewer(login, make_member, tenant):
    study = ingest_study(tenant)
    client = login(make_member(tenant, roles.VIEWER))
    link = _url("viewer_open", tenant, pk=study.pk)
    assert link in client.get(_url("worklist", tenant)).content.decode()
    page = client.get(_url("study", tenant, pk=study.pk)).content.decode()
    assert link in page and _url("study_thumbnails", tenant, pk=study.pk) in page


def test_thumbnails_page_shows_each_series_as_a_rendered_thumbnail(login, make_member, tenant):
    study = ingest_study(tenant)
    client = login(make_member(tenant, roles.VIEWER))
    response = client.get(_url("study_thumbnails", tenant, pk=study.pk))
    assert response.status_code == 200
    thumbs = re.findall(r'<img src="([^"]+)"', response.content.decode())
    assert len(thumbs) == study.num_series
    for thumb in thumbs:
        image = client.get(thumb, HTTP_ACCEPT="image/jpeg")
        assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
    assert AuditEvent.objects.for_tenant(tenant).filter(action="study.viewed").exists()


def _installer(*args, env_path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if env_path is not None:
        env["PATH"] = env_path
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "install_viewer.py"), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_installer_without_npm_says_so_and_leaves_nothing(tmp_path):
    result = _installer(str(tmp_path / "ohif"), env_path=str(tmp_path))  # a PATH with no npm
    assert result.returncode == 2
    assert "needs npm" in result.stderr and "apt-get install npm" in result.stderr
    assert list((tmp_path / "ohif").glob("*/index.html")) == []


def test_installer_refuses_a_tarball_that_is_not_the_pinned_one(tmp_path):
    bogus = tmp_path / "ohif-app.tgz"
    subprocess.run(["tar", "czf", str(bogus), "-C", str(ROOT), "README.md"], check=True)
    result = _installer("--tarball", str(bogus), str(tmp_path / "ohif"))
    assert result.returncode == 1
    assert "not the pinned" in result.stderr
    assert not any((tmp_path / "ohif").glob("[0-9]*"))


def test_metadata_and_searches_are_gzipped_for_clients_that_accept_it(tenant, make_token):
    """A viewer's metadata of a study is mostly repeated JSON: sent compressed, it is a
    fraction of its size (OHIF loads it before the first image)."""
    from tests.archive.dicomweb_data import ingest_datasets
    from tests.dicom_factory import make_ct_series

    series = make_ct_series(20, 16, 16)
    ingest_datasets(tenant, series)
    token = make_token(tenant, scopes=("read",))
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    url = f"/t/{tenant.slug}/dicomweb/studies/{series[0].StudyInstanceUID}/metadata"
    plain = Client().get(url, **headers)
    packed = Client().get(url, HTTP_ACCEPT_ENCODING="gzip", **headers)
    assert "Content-Encoding" not in plain and packed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed["Vary"]
    assert json.loads(gzip.decompress(packed.content)) == plain.json()
    assert len(packed.content) * 8 < len(plain.content)
    search = Client().get(f"/t/{tenant.slug}/dicomweb/studies", HTTP_ACCEPT_ENCODING="gzip", **headers)
    assert search["Content-Encoding"] == "gzip"


def _one_ct_frame(tenant, make_token):
    """A stored 256² CT image: (dataset, its first frame's URL, a reader's request headers)."""
    from tests.archive.dicomweb_data import ingest_datasets
    from tests.dicom_factory import make_ct_series

    [ds] = make_ct_series(1, 256, 256)
    ingest_datasets(tenant, [ds])
    token = make_token(tenant, scopes=("read",))
    url = (f"/t/{tenant.slug}/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}/frames/1")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_ACCEPT": 'multipart/related; type="application/octet-stream"'}
    return ds, url, headers


def test_frames_go_in_zstd_to_a_browser_that_accepts_it(tenant, make_token):
    """Chromium and Firefox accept zstd: smaller than gzip level 1 for a CT frame, for
    half its CPU on the server. A client that refuses a coding (q=0) does not get it."""
    import zstandard

    from archive.dicomweb.compression import accepted_codings

    ds, url, headers = _one_ct_frame(tenant, make_token)
    chromium = Client().get(url, HTTP_ACCEPT_ENCODING="gzip, deflate, br, zstd", **headers)
    assert chromium["Content-Encoding"] == "zstd" and "Accept-Encoding" in chromium["Vary"]
    body = zstandard.ZstdDecompressor().decompressobj().decompress(b"".join(chromium.streaming_content))
    assert bytes(ds.PixelData) in body
    gzipped = b"".join(Client().get(url, HTTP_ACCEPT_ENCODING="gzip", **headers).streaming_content)
    assert len(b"".join(Client().get(url, HTTP_ACCEPT_ENCODING="zstd", **headers).streaming_content)) < len(gzipped)
    refused = Client().get(url, HTTP_ACCEPT_ENCODING="zstd;q=0, gzip;q=0.5", **headers)
    assert refused["Content-Encoding"] == "gzip"
    assert accepted_codings("gzip;q=0.8, ZSTD ;q=1, br;q=0, x;q=oops") == {"gzip", "zstd"}


def test_frames_are_gzipped_fast_and_not_marked_no_store(tenant, make_token):
    """Frames go gzipped to a client that accepts it (half a CT frame's bytes), and with
    `private, no-cache`: `no-store` made Chromium abandon a viewer's frame requests."""
    ds, url, headers = _one_ct_frame(tenant, make_token)
    plain = Client().get(url, **headers)
    packed = Client().get(url, HTTP_ACCEPT_ENCODING="gzip, deflate", **headers)
    plain_body = b"".join(plain.streaming_content)
    packed_body = b"".join(packed.streaming_content)
    assert "Content-Encoding" not in plain and packed["Content-Encoding"] == "gzip"
    assert "Content-Length" not in packed
    assert bytes(ds.PixelData) in gzip.decompress(packed_body)
    assert len(packed_body) * 1.5 < len(plain_body)
    for response in (plain, packed):
        assert response["Cache-Control"] == "private, no-cache"
