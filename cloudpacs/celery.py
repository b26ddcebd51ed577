import os

from celery import Celery
from celery.signals import worker_init
from kombu.transport import TRANSPORT_ALIASES

# "filesystem://" (the embedded broker) is kombu's transport with one fix: a message appears
# in the queue folder only once it is complete (cloudpacs/embedded_broker.py). An alias,
# not a setting, so whatever URL a process is given picks its transport by itself.
TRANSPORT_ALIASES["filesystem"] = "cloudpacs.embedded_broker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudpacs.settings")

app = Celery("cloudpacs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _lower_priority(**_kwargs) -> None:
    """Give a worker's CPU to ingest when both want it (settings.WORKER_NICE).

    Linux keeps a niceness per thread, and a thread starts with its creator's: every thread
    running now is lowered, so those it starts later (the pool's) are too."""
    from django.conf import settings

    if settings.WORKER_NICE <= 0:
        return
    for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else [0]:
        tid = int(tid)
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + settings.WORKER_NICE)
