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
    """Start the worker's STOW-RS parse process now rather than on its first upload, set
    the allocator for megabyte buffers (cloudpacs.serving.malloc), and import every view
    (the URL configuration): about 0.4 s that each worker's first request paid, on a
    viewer's first screen after a restart. After the parse process: it is forked from
    its own server, not from this worker, so what is imported here is not copied there."""
    from django.urls import get_resolver

    from archive.ingest.parse_ahead import warm
    from cloudpacs.serving.malloc import tune

    tune()
    warm()
    get_resolver().reverse_dict  # noqa: B018 - imports the views and indexes their names
