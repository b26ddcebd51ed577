"""CLOUDPACS_ENV=production refuses to start with an unsafe configuration.

Settings are read once per process, so each case starts a fresh Python.
"""

import base64
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
SCRUB = tuple(GOOD)


def start(tmp_path, **overrides) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(GOOD, CLOUDPACS_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="cloudpacs.settings")
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    code = ("import django; django.setup(); from django.conf import settings; "
            "print('started', settings.DEBUG, settings.SESSION_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT)")
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
