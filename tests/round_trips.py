"""How many times PostgreSQL was waited on, counted from libpq's own trace of the
protocol: a round trip is a run of messages the client sent followed by the server's
answers to them. Statements sent together (several in one call, or a pipeline) count once.

Every connection this thread's Django uses inside the block is traced, including one a
request takes from the pool after the block began."""

import tempfile
from contextlib import contextmanager
from unittest import mock

from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper
from psycopg import pq


class RoundTrips:
    count: int | None = None
    messages: list[str]


@contextmanager
def counting_round_trips(_connection=connection):
    """`with counting_round_trips() as trips: ...`, then `trips.count` (and
    `trips.messages`, one line per protocol message, to show what was sent)."""
    trips, traced = RoundTrips(), []
    with tempfile.TemporaryFile("w+") as trace:
        def start(pgconn) -> None:
            if not any(pgconn is seen for seen in traced):
                pgconn.trace(trace.fileno())
                pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
                traced.append(pgconn)

        ensure = DatabaseWrapper.ensure_connection

        def ensure_traced(wrapper) -> None:
            ensure(wrapper)
            start(wrapper.connection.pgconn)

        _connection.ensure_connection()
        start(_connection.connection.pgconn)
        try:
            with mock.patch.object(DatabaseWrapper, "ensure_connection", ensure_traced):
                yield trips
        finally:
            for pgconn in traced:
                pgconn.untrace()
        trace.seek(0)
        trips.messages = [" ".join(line.split("\t")[:3:2]).strip() for line in trace if "\t" in line]
    directions = [message[0] for message in trips.messages]
    trips.count = sum(1 for before, now in zip(["B", *directions[:-1]], directions, strict=True)
                      if before == "F" and now == "B")
