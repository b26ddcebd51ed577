"""The Content-Security-Policy: every response carries it, it allows our own origin only, the
pages have nothing inline that it would block, and /api/docs/ needs no other origin.
(tests/e2e/test_csp_pages.py checks the same in Chromium, page by page.)"""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings

from tenants import roles

ROOT = Path(settings.BASE_DIR)
POLICY = {
    "default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self'",
    "font-src": "'self'", "connect-src": "'self'", "object-src": "'none'", "base-uri": "'self'",
    "form-action": "'self'", "frame-ancestors": "'none'",
}


def policy(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    return {name: value for name, _, value in (d.strip().partition(" ") for d in header.split(";")) if name}


def _templates() -> list[Path]:
    found = [p for p in ROOT.rglob("*.html") if ".venv" not in p.parts and "var" not in p.parts]
    assert len(found) > 20  # the project's own templates, not an empty search
    return found


class _InlineFinder(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style> element")
        self.found += [f"{name}= attribute" for name in names if name == "style" or name.startswith("on")]
        self.found += [f"javascript: URL in {name}" for name, value in attrs
                       if value and value.strip().lower().startswith("javascript:")]


@pytest.mark.parametrize("path", _templates(), ids=lambda p: str(p.relative_to(ROOT)))
def test_templates_have_nothing_inline_the_policy_blocks(path):
    finder = _InlineFinder()
    finder.feed(re.sub(r"{%.*?%}|{{.*?}}|{#.*?#}", "", path.read_text(), flags=re.S))
    assert finder.found == []


def test_scripts_write_no_inline_style_or_handlers():
    for path in (ROOT / "static" / "js").glob("*.js"):
        text = path.read_text()
        assert not re.search(r"""\sstyle=|\son[a-z]+=|setAttribute\(\s*["'](style|on)""", text), path.name


def test_a_page_carries_the_policy(client, db):
    response = client.get("/login/")
    assert response.status_code == 200
    assert policy(response) == POLICY


def test_answers_the_middleware_gives_itself_carry_it_too(client, tenant, other_tenant, make_member, login):
    # TenantMiddleware answers another clinic's member with 404 before any view runs.
    login(make_member(other_tenant, roles.RADIOLOGIST))
    response = client.get(f"/t/{tenant.slug}/studies/")
    assert response.status_code == 404
    assert policy(response) == POLICY
    static = client.get("/static/css/app.css")
    assert static.status_code == 200
    assert policy(static) == POLICY


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def test_api_docs_come_from_our_own_origin(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    links = _Links()
    links.feed(html)
    assert links.urls and all(url.startswith("/") and not url.startswith("//") for url in links.urls), links.urls
    assert "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in links.urls
    assert "fonts.googleapis" not in html and "<style" not in html and "<script>" not in html
    for url in links.urls:
        assert client.get(url).status_code == 200, url
    # Redoc's own styles get in by this response's nonce (and two fixed hashes), nothing else.
    directives = policy(response)
    nonce = re.search(r"data-style-nonce=\"([^\"]+)\"", html).group(1)
    assert f"'nonce-{nonce}'" in directives["style-src"].split()
    assert "'unsafe-inline'" not in directives["style-src"]
    assert directives["script-src"] == "'self'"
    assert client.get("/api/docs/").headers["Content-Security-Policy"] != response.headers["Content-Security-Policy"]
