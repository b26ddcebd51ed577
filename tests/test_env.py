"""Boolean environment variables take on/off words only: a typo stops the start instead of
reading as off."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from cloudpacs.env import envbool

FLAG = "CLOUDPACS_TEST_FLAG"


@pytest.mark.parametrize("value, expected", [
    *[(word, True) for word in ("1", "true", "TRUE", "Yes", " on ")],
    *[(word, False) for word in ("0", "false", "False", "NO", "off\n")],
])
def test_on_and_off_words(monkeypatch, value, expected):
    monkeypatch.setenv(FLAG, value)
    assert envbool(FLAG, default=not expected) is expected


@pytest.mark.parametrize("value", [None, "", "   "])
def test_unset_or_empty_is_the_default(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(FLAG, raising=False)
    else:
        monkeypatch.setenv(FLAG, value)
    assert envbool(FLAG, default=True) is True
    assert envbool(FLAG, default=False) is False


@pytest.mark.parametrize("value", ["ture", "2", "enabled", "yep", "s3cr3t-Token-Value"])
def test_anything_else_is_refused_without_repeating_the_value(monkeypatch, value):
    monkeypatch.setenv(FLAG, value)
    with pytest.raises(ImproperlyConfigured) as refused:
        envbool(FLAG)
    message = str(refused.value)
    assert FLAG in message
    assert all(word in message for word in ("1", "true", "yes", "on", "0", "false", "no", "off"))
    assert value.lower() not in message.lower()


def test_settings_refuse_to_load_with_a_mistyped_debug(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=Path(settings.BASE_DIR), capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "cloudpacs.settings",
             "CLOUDPACS_VAR_DIR": str(tmp_path), "DEBUG": "ture"})
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: DEBUG must be one of"), last
    assert "ture" not in result.stderr
