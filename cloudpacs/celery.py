import os

from celery import Celery, signals
from kombu.transport import TRANSPORT_ALIASES

# "filesystem://" (the embedded broker) is kombu's transport with one fix: a message appears
# in the queue folder only once it is complete (cloudpacs/embedded_broker.py). An alias,
# not a setting, so whatever URL a process is given picks its transport by itself.
TRANSPORT_ALIASES["filesystem"] = "cloudpacs.embedded_broker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudpacs.settings")

app = Celery("cloudpacs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def _lower_priority(**kwargs):
    """The worker's work (copies to both regions, fixity, exports) waits behind requests a
    person or a modality waits for: under contention the kernel gives the web server and the
    DICOM gateway the CPU first (WORKER_NICE; 0 leaves the priority as it is). Set before the
    pool's threads start, which inherit it (on Linux a niceness is per thread)."""
    from django.conf import settings

    if settings.WORKER_NICE > 0:
        os.nice(settings.WORKER_NICE)
