"""The regions' S3 storage makes a connection per thread (django-storages), and each thread's
connection now shares one botocore loader, so botocore's JSON service models are read once
per process, not once per thread of the worker's pools."""

import threading

from cloudpacs.objectstore.s3 import RegionS3Storage


def _loaders_of_new_threads(storage, n: int = 3) -> list:
    loaders = []

    def connect():
        loaders.append(storage.connection.meta.client._loader)

    for _ in range(n):
        thread = threading.Thread(target=connect)
        thread.start()
        thread.join()
    return loaders


def test_threads_share_one_loader_and_the_regions_use_it(monkeypatch):
    storage = RegionS3Storage(bucket_name="b", endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="s",
                              region_name="us-east-1")
    loaders = _loaders_of_new_threads(storage, n=5)
    assert len({id(loader) for loader in loaders}) == 1
    # boto3 adds its data folder to the search path at each session: once is enough.
    assert len(loaders[0].search_paths) == len(set(loaders[0].search_paths))
    # A region configured as S3 is built on it.
    from cloudpacs.settings import _region_storage

    monkeypatch.setenv("STORAGE_PRIMARY_BUCKET", "clinic-primary")
    assert _region_storage("primary")["BACKEND"] == "cloudpacs.objectstore.s3.RegionS3Storage"
