"""The gunicorn worker class: uvicorn (uvloop, httptools) serving cloudpacs.asgi.

gunicorn stays the process manager (restarts, graceful reloads, one worker per core);
uvicorn's own access log is off, because it writes the query string (cloudpacs.serving.gate
logs requests instead)."""

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "lifespan": "on", "access_log": False}
