"""The worklist page with many studies, as a clinic member opens it (issue 11's target:
under 300 ms with 10,000 studies): CloudPACS as `make run` starts it, the studies loaded
by STOW-RS (one image each, 100 per body), then the worklist page fetched by a member's
session: the first page, a name search and a date range, each many times.

    .venv/bin/python -m bench.worklist [--studies 10000] [--requests 40]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudpacs.settings")

import requests  # noqa: E402

from bench import data, servers, workloads  # noqa: E402

READER, PASSWORD = "reader@bench.test", "bench-reader-password-1"
ADD_READER = f"""
from tenants.models import Membership, Tenant, User
user = User.objects.create_user("{READER}", "{PASSWORD}")
Membership.objects.for_tenant(Tenant.objects.get(slug="bench")).create(user=user, role="radiologist")
"""
SEARCHES = {"first page": {}, "name search": {"name": "smith"}, "date range": {"date_from": "2015-01-01",
                                                                              "date_to": "2016-12-31"}}


def member_session(origin: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{origin}/login/")
    response = session.post(f"{origin}/login/", data={
        "email": READER, "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{origin}/login/"}, allow_redirects=False)
    assert response.status_code == 302, response.status_code
    return session


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    studies = data.one_instance_studies(args.studies, 64)
    with servers.cloudpacs() as server:
        started = time.perf_counter()
        workloads.stow_kept_alive(server, studies, 100)
        print(f"loaded {args.studies} studies in {time.perf_counter() - started:.0f} s", flush=True)
        subprocess.run([sys.executable, "manage.py", "shell", "-c", ADD_READER], env=server.env,
                       cwd=servers.ROOT, check=True, capture_output=True)
        origin = server.base_url.split("/t/")[0]
        session = member_session(origin)
        for name, params in SEARCHES.items():
            timings = []
            for _ in range(args.requests):
                t = time.perf_counter()
                response = session.get(f"{origin}/t/bench/studies/", params=params)
                timings.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200 and "worklist" in response.text
            timings.sort()
            print(f"worklist {name:12s} p50 {statistics.median(timings):6.1f} ms  "
                  f"p95 {timings[int(len(timings) * 0.95)]:6.1f} ms  max {timings[-1]:6.1f} ms", flush=True)


if __name__ == "__main__":
    main()
