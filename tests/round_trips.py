"""How many times a connection waited for PostgreSQL's answer, counted from libpq's own
trace of the protocol: a round trip is a run of messages the client sent followed by the
server's answers to them. Statements sent together (a pipeline) count once."""

import tempfile
from contextlib import contextmanager

from psycopg import pq


class RoundTrips:
    count: int | None = None
    messages: list[str]


@contextmanager
def counting_round_trips(connection):
    """`with counting_round_trips(connection) as trips: ...`, then `trips.count`."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    trips = RoundTrips()
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield trips
        finally:
            pgconn.untrace()
        trace.seek(0)
        trips.messages = [" ".join(line.split("\t")[:3:2]).strip() for line in trace if "\t" in line]
    directions = [message[0] for message in trips.messages]
    trips.count = sum(1 for before, now in zip(["B", *directions[:-1]], directions, strict=True)
                      if before == "F" and now == "B")
