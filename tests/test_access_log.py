"""No PHI in access logs: a QIDO search's query string must not be logged."""

import asyncio
import logging

from cloudpacs.serving.gate import Gate


async def _ok(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"[]"})


def test_access_log_leaves_out_the_query_string(caplog):
    scope = {"type": "http", "method": "GET", "path": "/t/acme/dicomweb/studies",
             "query_string": b"PatientName=DOE%5EJANE&PatientID=PID-1", "http_version": "1.1",
             "headers": [], "client": ("127.0.0.1", 5000)}

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    with caplog.at_level(logging.INFO, logger="cloudpacs.access"):
        asyncio.run(Gate(_ok)(scope, receive, send))
    [record] = [r for r in caplog.records if r.name == "cloudpacs.access"]
    line = record.getMessage()
    assert '"GET /t/acme/dicomweb/studies HTTP/1.1" 200 2' in line
    assert "DOE" not in line and "PatientName" not in line and "PID-1" not in line
