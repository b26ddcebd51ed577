"""`export_clinic --to s3://BUCKET/PREFIX` into a real SeaweedFS bucket, credentials and
endpoint from the AWS_* environment as an operator would give them."""

import csv
import hashlib
import io
from io import StringIO

from django.core.management import call_command

from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import ACCESS_KEY, SECRET_KEY


def test_export_to_a_bucket(tenant, seaweed, monkeypatch):
    server = seaweed["secondary"]
    for name, value in {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                        "AWS_ENDPOINT_URL": server.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    sent = {ds.SOPInstanceUID: to_bytes(ds) for ds in make_ct_series(2, 32, 32)}
    for data in sent.values():
        assert ingest_bytes(tenant, data).ok
    call_command("export_clinic", "acme", "--to", f"s3://{server.bucket}/exports/acme", stdout=StringIO(),
                 stderr=StringIO())
    client = server.client()

    def read(key: str) -> bytes:
        return client.get_object(Bucket=server.bucket, Key=f"exports/acme/{key}")["Body"].read()

    rows = list(csv.DictReader(io.StringIO(read("manifest.csv").decode())))
    assert {row["sop_instance_uid"] for row in rows} == set(sent)
    for row in rows:
        assert read(row["file"]) == sent[row["sop_instance_uid"]]
        assert hashlib.sha256(sent[row["sop_instance_uid"]]).hexdigest() == row["sha256"]
    # Run again: the study is there already, nothing is written twice.
    err = StringIO()
    call_command("export_clinic", "acme", "--to", f"s3://{server.bucket}/exports/acme", stdout=StringIO(), stderr=err)
    assert "(1 there already)" in err.getvalue()
