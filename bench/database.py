"""The bench's side of CloudPACS's database: a fresh PostgreSQL database per round (cloned
from a migrated template, so a round does not pay for migrations), and how far the
archive pipeline has come, read with one cheap SQL query.

The pipeline's progress is read straight from the tables (`archive_instance`,
`archive_instancecopy`) rather than through `manage.py storage_status`: that command
starts a Django process, about a CPU-second on this machine, and polling it four times
a second would load the server being measured."""

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg

from bench import netns

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PROGRESS_SQL = """
SELECT (SELECT count(*) FROM archive_instance),
       (SELECT count(*) FROM archive_instancecopy WHERE region = 'primary' AND state = 'verified'),
       (SELECT count(*) FROM archive_instancecopy WHERE region = 'secondary' AND state = 'verified')
"""


def postgres_server_url() -> str | None:
    """DATABASE_URL without its database name, reachable from where the bench runs: inside
    the bench's network namespace a loopback address becomes PostgreSQL's Unix socket."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return None
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.hostname in LOOPBACK and netns.inside():
        userinfo = netloc.rsplit("@", 1)[0] + "@" if "@" in netloc else ""
        netloc = f"{userinfo}{quote(netns.PG_SOCKET_DIR, safe='')}:{parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, "", "", ""))


def database_url(server_url: str, name: str) -> str:
    return f"{server_url}/{name}"


def _admin(server_url: str) -> psycopg.Connection:
    return psycopg.connect(database_url(server_url, "postgres"), autocommit=True)


def create_database(server_url: str, name: str, template: str | None = None) -> None:
    with _admin(server_url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


def drop_database(server_url: str, name: str) -> None:
    with _admin(server_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Progress:
    instances: int
    primary_verified: int
    secondary_verified: int

    @property
    def unverified(self) -> int:
        """Instances not yet verified in both regions (the worker's backlog)."""
        return self.instances - min(self.primary_verified, self.secondary_verified)


class ArchiveProgress:
    """Polls one CloudPACS database for how many instances are verified in each region."""

    def __init__(self, postgres_url: str | None = None, sqlite_path: Path | None = None):
        self.postgres_url, self.sqlite_path = postgres_url, sqlite_path
        self._connection = None

    def _connect(self):
        if self.postgres_url:
            return psycopg.connect(self.postgres_url, autocommit=True)
        # Read-only: a reader of a WAL database never blocks the server's writers.
        return sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=20)

    def now(self) -> Progress:
        if self._connection is None:
            self._connection = self._connect()
        return Progress(*self._connection.execute(PROGRESS_SQL).fetchone())

    def wait_all_verified(self, expected_instances: int, timeout: float = 1800, interval: float = 0.25,
                          check=lambda: None) -> Progress:
        """Poll until at least `expected_instances` are stored and every stored instance is
        verified in both regions; `check()` is called each time (it raises when a process
        the work depends on has died, rather than wait for the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            check()
            progress = self.now()
            if progress.instances >= expected_instances and progress.unverified == 0:
                return progress
            if time.monotonic() > deadline:
                raise TimeoutError(f"not verified in both regions after {timeout:.0f} s: {progress}")
            time.sleep(interval)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
