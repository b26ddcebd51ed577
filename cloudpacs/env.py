"""Tiny helpers that read settings from the environment with safe defaults."""

import os


def envstr(name: str, default: str = "") -> str:
    # An empty value counts as unset, so `FOO= make run` falls back to the default.
    return os.environ.get(name) or default


def envbool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]
