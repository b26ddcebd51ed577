"""The application `make run` and docker/ serve (gunicorn with uvicorn workers)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudpacs.settings")
django.setup(set_prefix=False)

from cloudpacs.serving.gate import Gate  # noqa: E402
from cloudpacs.serving.handler import CloudPacsASGIHandler  # noqa: E402

application = Gate(CloudPacsASGIHandler())
