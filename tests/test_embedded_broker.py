"""The embedded broker (kombu's filesystem transport, `make run`) must not make each step
of the archive pipeline wait: kombu polls an empty queue once a second by default, and with
one message per step 300 instances took five minutes to reach both regions (25 s at 0.05 s;
`python -m bench.pipeline_lag`)."""

import os
import subprocess
import sys


def test_the_embedded_broker_polls_an_empty_queue_often():
    env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
    code = ("import django; django.setup()\n"
            "from django.conf import settings\n"
            "print(settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS['polling_interval'])\n")
    done = subprocess.run([sys.executable, "-c", code], env={**env, "DJANGO_SETTINGS_MODULE": "cloudpacs.settings"},
                          capture_output=True, text=True, timeout=120, check=True)
    url, interval = done.stdout.split()
    assert url == "filesystem://" and float(interval) <= 0.1
