"""Create the two regions' buckets if they do not exist (compose's S3 store starts empty).

Real deployments create buckets (with versioning, lifecycle and replication rules) in
their infrastructure code and leave STORAGE_CREATE_BUCKETS unset.
"""

import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def ensure_bucket(region: str) -> str | None:
    prefix = f"STORAGE_{region.upper()}_"
    bucket = os.environ.get(prefix + "BUCKET")
    if not bucket:
        return None
    location = os.environ.get(prefix + "REGION") or "us-east-1"
    client = boto3.client(
        "s3", endpoint_url=os.environ.get(prefix + "ENDPOINT") or None, region_name=location,
        aws_access_key_id=os.environ.get(prefix + "ACCESS_KEY") or None,
        aws_secret_access_key=os.environ.get(prefix + "SECRET_KEY") or None,
        config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3},
                      s3={"addressing_style": os.environ.get(prefix + "ADDRESSING_STYLE", "path")}),
    )
    try:
        client.head_bucket(Bucket=bucket)
        return f"{region}: bucket {bucket} exists"
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    options = {} if location == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": location}}
    client.create_bucket(Bucket=bucket, **options)
    return f"{region}: bucket {bucket} created"


def main() -> int:
    for region in ("primary", "secondary"):
        message = ensure_bucket(region)
        if message:
            print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
