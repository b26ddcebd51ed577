"""Operators' admin for the archive. Storage pages live with their code."""

from archive.storage import admin as storage_admin  # noqa: F401 - registers the storage pages
