"""Gunicorn settings shared by `make run` and the Docker image (gunicorn reads this file
from its working directory). Gunicorn manages the processes; each worker is uvicorn
serving the ASGI application (cloudpacs.serving), so slow uploads wait in the event loop
instead of holding a thread. Access logs are written by cloudpacs.serving.gate, without
query strings (QIDO-RS searches carry patient names and IDs there)."""

wsgi_app = "cloudpacs.asgi:application"
worker_class = "cloudpacs.serving.worker.Worker"
# A worker whose event loop does not come round for this long is restarted. Requests are
# not bounded by it: their views run in threads, and idle bodies time out on their own.
timeout = 60
graceful_timeout = 30
keepalive = 5
# gunicorn's control socket would be one path in the home folder shared by every server
# on the machine (make run beside the test suite's servers); nothing here uses it.
control_socket_disable = True


def post_worker_init(worker):
    """Start the worker's STOW-RS parse process now rather than on its first upload, and
    set the allocator for megabyte buffers (cloudpacs.serving.malloc)."""
    from archive.ingest.parse_ahead import warm
    from cloudpacs.serving.malloc import tune

    tune()
    warm()
