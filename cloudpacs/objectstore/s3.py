"""django-storages' S3Storage for the regions, with botocore's service models loaded once per
process, and one S3 client per region shared by the process's threads.

S3Storage makes a boto3 session and resource per thread (boto3's resources are not
thread-safe); each new session read and parsed botocore's JSON models again (tens of
milliseconds of CPU for every thread of the worker's pools, in each region): in a profile
of a fresh worker archiving a CT series that was half its CPU. The threads now share one
loader, whose cache holds the models. The object I/O of `cloudpacs.objectstore.objects`
goes through `shared_client`: botocore's clients are thread-safe, so the archive pipeline's
threads need one client (and one connection pool) per region, not one each."""

import os
import threading

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from storages.backends.s3 import S3Storage

_lock = threading.Lock()
_loader: tuple[int, botocore.loaders.Loader] | None = None  # (pid that made it, loader)
# Connections the shared client keeps per region: the pipeline's upload threads, the
# Celery pool's threads and the web server's readers may all use it at once.
SHARED_POOL_CONNECTIONS = 32


def _shared_loader() -> botocore.loaders.Loader:
    global _loader
    with _lock:
        if _loader is None or _loader[0] != os.getpid():  # not one made before a fork
            _loader = (os.getpid(), botocore.loaders.create_loader())
        return _loader[1]


class RegionS3Storage(S3Storage):
    _shared: tuple[int, object] | None = None  # (pid that made it, client)

    def _create_session(self):
        core = botocore.session.get_session()
        loader = _shared_loader()
        core.register_component("data_loader", loader)
        with _lock:
            if self.session_profile:
                session = boto3.Session(profile_name=self.session_profile, botocore_session=core)
            else:
                session = boto3.Session(aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                                        aws_session_token=self.security_token, botocore_session=core)
            # Each boto3 session appends its data folder to the loader's search path: shared,
            # the path would grow by one folder per thread, and every look-up walk it.
            loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
        return session

    @property
    def shared_client(self):
        """This region's S3 client for every thread of this process (made after a fork
        anew: a client's connection pool must not be shared between processes)."""
        shared = self._shared
        if shared is None or shared[0] != os.getpid():
            session = self._create_session()
            with _lock:
                shared = self._shared
                if shared is None or shared[0] != os.getpid():
                    config = self.client_config.merge(Config(max_pool_connections=SHARED_POOL_CONNECTIONS))
                    client = session.client("s3", region_name=self.region_name, use_ssl=self.use_ssl,
                                            endpoint_url=self.endpoint_url, config=config, verify=self.verify)
                    shared = self._shared = (os.getpid(), client)
        return shared[1]
