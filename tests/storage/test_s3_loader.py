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


def test_the_process_threads_share_one_client_per_region_with_a_pool_for_them():
    storage = RegionS3Storage(bucket_name="b", endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="s",
                              region_name="us-east-1")
    clients = []

    def use():
        clients.append(storage.shared_client)

    threads = [threading.Thread(target=use) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(client) for client in clients}) == 1
    assert clients[0].meta.config.max_pool_connections >= 16
    # Another region's storage has its own.
    other = RegionS3Storage(bucket_name="c", endpoint_url="http://127.0.0.1:8", access_key="a", secret_key="s",
                            region_name="us-east-1")
    assert other.shared_client is not clients[0]


def test_a_regions_addressing_style_and_signature_reach_its_clients(monkeypatch):
    """django-storages applies its addressing_style option only when it builds the client
    config itself; with the timeouts' config it was dropped, and a store on a host name
    (MinIO, Ceph) would have been addressed virtual-host style."""
    from cloudpacs.settings import _region_storage

    monkeypatch.setenv("STORAGE_PRIMARY_BUCKET", "clinic-primary")
    monkeypatch.setenv("STORAGE_PRIMARY_ENDPOINT", "http://objects.clinic.example:9000")
    options = _region_storage("primary")["OPTIONS"]
    storage = RegionS3Storage(**options)
    for client in (storage.connection.meta.client, storage.shared_client):
        assert client.meta.config.s3["addressing_style"] == "path"
        assert client.meta.config.signature_version == "s3v4"
        assert client.meta.config.connect_timeout == 5
    monkeypatch.delenv("STORAGE_PRIMARY_ENDPOINT")  # AWS itself: boto3 chooses
    assert RegionS3Storage(**_region_storage("primary")["OPTIONS"]).shared_client.meta.config.s3[
        "addressing_style"] == "auto"
    monkeypatch.setenv("STORAGE_PRIMARY_ADDRESSING_STYLE", "virtual")
    assert RegionS3Storage(**_region_storage("primary")["OPTIONS"]).shared_client.meta.config.s3[
        "addressing_style"] == "virtual"
