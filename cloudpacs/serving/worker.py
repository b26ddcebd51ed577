"""The gunicorn worker class: uvicorn (uvloop, httptools) serving cloudpacs.asgi.

gunicorn stays the process manager (restarts, graceful reloads, one worker per core);
uvicorn's own access log is off, because it writes the query string (cloudpacs.serving.gate
logs requests instead)."""

import signal
import sys

from uvicorn_worker import UvicornWorker


def _leave(signum, frame):
    sys.exit(0)


class Worker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "lifespan": "on", "access_log": False}

    def init_signals(self) -> None:
        super().init_signals()
        # uvicorn raises the stop signal again once it has shut down. With the default
        # action the process would die right there, past every exit handler, and the
        # STOW-RS parse process and its fork server would outlive it: leave by SystemExit.
        for stop in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(stop, _leave)
