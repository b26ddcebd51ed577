"""django-storages' S3Storage for the regions, with botocore's service models loaded once per
process. S3Storage makes a boto3 session and resource per thread; each new session read
and parsed botocore's JSON models again (tens of milliseconds of CPU for every thread of
the worker's pools, in each region): in a profile of a fresh worker archiving a CT series
that was half its CPU. The threads now share one loader, whose cache holds the models."""

import os
import threading

import boto3
import botocore.loaders
import botocore.session
from storages.backends.s3 import S3Storage

_lock = threading.Lock()
_loader: tuple[int, botocore.loaders.Loader] | None = None  # (pid that made it, loader)


def _shared_loader() -> botocore.loaders.Loader:
    global _loader
    with _lock:
        if _loader is None or _loader[0] != os.getpid():  # not one made before a fork
            _loader = (os.getpid(), botocore.loaders.create_loader())
        return _loader[1]


class RegionS3Storage(S3Storage):
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
