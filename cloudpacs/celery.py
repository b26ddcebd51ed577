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


_lowered = False


@worker_init.connect
def _lower_priority(**_kwargs) -> None:
    """Give a worker's CPU to ingest when both want it (settings.WORKER_NICE).

    Linux keeps a niceness per thread, and a thread starts with its creator's: every thread
    running now is set to the lowered value, so those it starts later (the pool's, prefork's
    children, an embedded beat) are too. Once per process."""
    global _lowered
    from django.conf import settings

    if _lowered or settings.WORKER_NICE <= 0 or not hasattr(os, "setpriority"):
        return
    _lowered = True
    target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + settings.WORKER_NICE)
    for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else [0]:
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), target)
        except ProcessLookupError:  # the thread ended meanwhile
            continue
