"""No PHI in access logs: a QIDO search's query string must not be logged."""

import runpy
from pathlib import Path

from gunicorn.config import Config
from gunicorn.glogging import Logger

ROOT = Path(__file__).resolve().parent.parent


def test_access_log_leaves_out_the_query_string():
    cfg = Config()
    cfg.set("access_log_format", runpy.run_path(str(ROOT / "gunicorn.conf.py"))["access_log_format"])
    logger = Logger(cfg)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/t/acme/dicomweb/studies?PatientName=DOE%5EJANE",
               "PATH_INFO": "/t/acme/dicomweb/studies", "QUERY_STRING": "PatientName=DOE%5EJANE",
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "test"}

    class Response:
        status = "200 OK"
        status_code = 200
        headers = []
        sent = 10
        response_length = 10

    class Request:
        headers = []

    from datetime import timedelta

    atoms = logger.atoms(Response(), Request(), environ, timedelta(seconds=0.01))
    line = cfg.access_log_format % atoms
    assert "/t/acme/dicomweb/studies" in line
    assert "DOE" not in line and "PatientName" not in line
