"""Gunicorn settings shared by `make run` and the Docker image (gunicorn reads this file
from its working directory).

Access logs show the path but never the query string: QIDO-RS searches carry patient
names and IDs there (PatientName=..., PatientID=...), and no PHI may reach the logs."""

access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(L)ss "%(a)s"'


def post_worker_init(worker):
    """Start the worker's STOW-RS parse process now rather than on its first upload."""
    from archive.ingest.parse_ahead import warm

    warm()
