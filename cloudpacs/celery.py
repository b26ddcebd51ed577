import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

# "filesystem://" (the embedded broker) is kombu's transport with one fix: a message appears
# in the queue folder only once it is complete (cloudpacs/embedded_broker.py). An alias,
# not a setting, so whatever URL a process is given picks its transport by itself.
TRANSPORT_ALIASES["filesystem"] = "cloudpacs.embedded_broker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudpacs.settings")

app = Celery("cloudpacs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
