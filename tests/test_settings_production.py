"""CLOUDPACS_ENV=production refuses to start with an unsafe configuration.

Settings are read once per process, so each case starts a fresh Python.
"""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
GOOD = {
    "CLOUDPACS_ENV": "production",
    "SECRET_KEY": "k" * 20 + "-a-real-random-production-secret-value",
    "ALLOWED_HOSTS": "pacs.example.org",
    "DEBUG": "0",
    # Envelope-encryption master key (base64 of 32 bytes), kept outside the database.
    "CLOUDPACS_MASTER_KEY": base64.b64encode(bytes(range(32))).decode(),
}
# Anything the caller's environment might set that would change the outcome.
SCRUB = (*GOOD, "TRUSTED_PROXY_COUNT", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
         "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD")


STARTED = ("import django; django.setup(); from django.conf import settings; "
           "print('started', settings.DEBUG, settings.SESSION_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT)")


def start(tmp_path, code: str = STARTED, **overrides) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(GOOD, CLOUDPACS_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="cloudpacs.settings")
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_starts_when_everything_is_set(tmp_path):
    result = start(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started False True True"


@pytest.mark.parametrize("overrides, problem", [
    ({"DEBUG": "1"}, "DEBUG is on"),
    ({"DEBUG": "true"}, "DEBUG is on"),
    ({"SECRET_KEY": None}, "SECRET_KEY is the default"),
    ({"SECRET_KEY": "insecure-embedded-default-secret-key-change-me"}, "SECRET_KEY is the default"),
    ({"SECRET_KEY": "short-secret"}, "shorter than 32 characters"),
    ({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS is empty"),
    ({"ALLOWED_HOSTS": " , "}, "ALLOWED_HOSTS is empty"),
    ({"CLOUDPACS_MASTER_KEY": None}, "CLOUDPACS_MASTER_KEY"),
], ids=["debug-1", "debug-true", "no-secret", "default-secret", "short-secret", "no-hosts", "blank-hosts",
        "no-master-key"])
def test_refuses_an_unsafe_configuration(tmp_path, overrides, problem):
    result = start(tmp_path, **overrides)
    assert result.returncode != 0
    assert "started" not in result.stdout
    assert "ImproperlyConfigured: Refusing to start in production" in result.stderr
    assert problem in result.stderr


def test_lists_every_problem_at_once(tmp_path):
    result = start(tmp_path, DEBUG="1", SECRET_KEY=None, ALLOWED_HOSTS=None)
    assert result.returncode != 0
    for problem in ("DEBUG is on", "SECRET_KEY is the default", "ALLOWED_HOSTS is empty"):
        assert problem in result.stderr


def test_development_needs_none_of_it(tmp_path):
    result = start(tmp_path, CLOUDPACS_ENV=None, SECRET_KEY=None, ALLOWED_HOSTS=None, DEBUG=None)
    assert result.returncode == 0, result.stderr
    # Debug mode is off unless asked for, even in development.
    assert result.stdout.startswith("started False")


def test_development_may_turn_debug_on(tmp_path):
    result = start(tmp_path, CLOUDPACS_ENV=None, SECRET_KEY=None, ALLOWED_HOSTS=None, DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("started True")


# Plain HTTP and HTTPS requests (as the TLS proxy forwards them) to a production process.
REQUESTS = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client

def ask(path, **headers):
    r = Client(HTTP_HOST="pacs.example.org").get(path, **headers)
    return [r.status_code, r.headers.get("Location"), r.headers.get("Strict-Transport-Security")]

print(json.dumps({
    "http_page": ask("/login/"),
    "http_healthz": ask("/healthz"),
    "http_readyz_redirected": ask("/readyz")[0] in (301, 302),
    "https_healthz": ask("/healthz", HTTP_X_FORWARDED_PROTO="https"),
    "cookies_secure": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY],
    "nosniff": settings.SECURE_CONTENT_TYPE_NOSNIFF, "referrer": settings.SECURE_REFERRER_POLICY,
}))
"""
HSTS = "max-age=31536000; includeSubDomains"


def test_production_redirects_to_https_and_sends_hsts(tmp_path):
    result = start(tmp_path, REQUESTS)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers["http_page"] == [301, "https://pacs.example.org/login/", None]
    assert answers["https_healthz"] == [200, None, HSTS]
    assert answers["cookies_secure"] == [True, True, True]
    assert answers["nosniff"] is True and answers["referrer"] == "same-origin"


def test_health_checks_answer_over_plain_http(tmp_path):
    # Docker's health check asks the app itself, past the TLS proxy.
    result = start(tmp_path, REQUESTS)
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers["http_healthz"] == [200, None, None]
    assert answers["http_readyz_redirected"] is False


def test_the_forwarded_scheme_is_believed_only_behind_a_proxy(tmp_path):
    # With no proxy in front, a client claiming HTTPS by header is still plain HTTP.
    result = start(tmp_path, REQUESTS, TRUSTED_PROXY_COUNT="0")
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers["https_healthz"] == [200, None, None]


def test_hsts_preload_is_opt_in(tmp_path):
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECURE_HSTS_PRELOAD)"
    assert start(tmp_path, code).stdout.strip() == "False"
    assert start(tmp_path, code, SECURE_HSTS_PRELOAD="1").stdout.strip() == "True"
