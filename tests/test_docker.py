"""docker/: the compose file, the image recipe and the health checks it relies on.

Docker itself cannot run here, so the compose file is checked by parsing it, and the
production settings it configures are checked by starting Django with its environment.
The health-check script is run for real against a live server, Redis and closed ports.
"""

import os
import re
import runpy
import socket
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
DOCKER = ROOT / "docker"
APP_SERVICES = ("web", "worker", "beat", "gateway")
PRODUCTION_ENV = ["CLOUDPACS_ENV", "SECRET_KEY", "CLOUDPACS_MASTER_KEY", "ALLOWED_HOSTS", "DATABASE_URL",
                  "CELERY_BROKER_URL"] + [f"STORAGE_{region}_{part}" for region in ("PRIMARY", "SECONDARY")
                                          for part in ("BUCKET", "ENDPOINT", "REGION", "ACCESS_KEY", "SECRET_KEY")]
# What an operator puts in docker/.env (see docker/env.example).
DOT_ENV = {
    "SECRET_KEY": "s" * 60,
    "CLOUDPACS_MASTER_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "ALLOWED_HOSTS": "pacs.example.org",
    "POSTGRES_PASSWORD": "pg-secret",
    "S3_SECRET_KEY": "s3-secret-key",
}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def interpolate(value: str, env: dict) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} substitution."""
    def substitute(match):
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"compose would refuse: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", substitute, value)


def test_every_service_has_a_healthcheck(compose):
    services = compose["services"]
    assert {*APP_SERVICES, "postgres", "redis", "objectstore"} <= set(services)
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_ingest_and_archive_services_share_tier_one(compose):
    """Web and gateway acknowledge into tier 1 and the worker archives from it: a service
    that sets its own volumes replaces the shared list and must keep /data."""
    services = compose["services"]
    for name in ("web", "gateway", "worker"):
        assert "cloudpacs-data:/data" in services[name].get("volumes", []), name
    assert "./tls:/tls:ro" in services["gateway"]["volumes"]


def test_uploads_in_progress_are_on_the_volume_web_and_worker_share(compose):
    """The web service receives resumable uploads; the worker expires abandoned ones (they
    are plaintext until complete). In the container's own layer they were neither kept
    across a restart nor seen by the worker, so never expired."""
    env = compose["x-app-env"]
    for name in ("UPLOAD_DIR", "INGEST_TMP_DIR", "TIER1_PATH"):
        assert env[name].startswith("/data/"), name


def test_the_worker_yields_the_cpu_to_the_services_that_acknowledge(compose):
    # Docker's default share is 1024; niceness inside a container does not rank it
    # against the web and gateway containers, so the share does.
    services = compose["services"]
    assert services["worker"]["cpu_shares"] < 1024
    assert all("cpu_shares" not in services[name] for name in ("web", "gateway"))


def test_app_services_run_in_production_mode(compose):
    services = compose["services"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["CLOUDPACS_ENV"] == "production" and env["DEBUG"] == "0", name
        missing = [key for key in PRODUCTION_ENV if not env.get(key)]
        assert not missing, f"{name} lacks {missing}"
        # No secret is written into the file; each comes from docker/.env or stops compose.
        for key in ("SECRET_KEY", "CLOUDPACS_MASTER_KEY", "STORAGE_PRIMARY_SECRET_KEY"):
            assert env[key].startswith("${") and ":?" in env[key], f"{name}.{key} must be required"
        assert services[name]["command"] == [name]
    env = services["web"]["environment"]
    assert env["STORAGE_PRIMARY_BUCKET"] != env["STORAGE_SECONDARY_BUCKET"]
    assert env["STORAGE_PRIMARY_REGION"] != env["STORAGE_SECONDARY_REGION"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert "11112:11112" in services["gateway"]["ports"]
    assert services["web"]["healthcheck"]["test"][-1] == "web"
    assert all(services[n]["depends_on"]["web"]["condition"] == "service_healthy"
               for n in ("worker", "beat", "gateway"))  # the web role migrates first


def test_compose_environment_starts_production_settings(compose, tmp_path):
    raw = compose["services"]["web"]["environment"]
    env = {k: interpolate(str(v), DOT_ENV) for k, v in raw.items()}
    with pytest.raises(KeyError, match="SECRET_KEY"):
        interpolate(raw["SECRET_KEY"], {})
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.DEBUG, s.STORAGES['primary']['OPTIONS']['bucket_name'], "
            "s.STORAGES['secondary']['OPTIONS']['bucket_name'], s.DATABASES['default']['HOST'], "
            "s.CELERY_BROKER_URL)")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": os.environ["PATH"], "CLOUDPACS_VAR_DIR": str(tmp_path),
             "DJANGO_SETTINGS_MODULE": "cloudpacs.settings", **env})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "cloudpacs-primary", "cloudpacs-secondary", "postgres",
                                     "redis://redis:6379/0"]


def test_dockerfile_builds_a_non_root_gunicorn_image():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert "pip install -r requirements.lock" in dockerfile
    assert "collectstatic --noinput" in dockerfile
    # The viewer comes from the npm registry at the pinned version, its bytes checked.
    assert re.search(r"^FROM node:\S+ AS viewer$", dockerfile, re.M)
    assert "ohif.lock.json" in dockerfile and "install_viewer.py --tarball" in dockerfile
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    # Files copied from the build context exist (not those from another build stage).
    for sources in re.findall(r"^COPY (?!--from=)(.+) \S+$", dockerfile, re.M):
        for source in sources.split():
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
    entrypoint = (DOCKER / "entrypoint.sh").read_text()
    # Docker and `make run` start the same server: gunicorn configured by gunicorn.conf.py
    # (uvicorn workers serving the ASGI app), never the WSGI app with threads that slow
    # uploads could all hold.
    assert re.search(r"^\s+exec gunicorn \\$", entrypoint, re.M)
    assert "wsgi" not in entrypoint and "--threads" not in entrypoint
    run_script = (ROOT / "scripts" / "run_embedded.sh").read_text()
    assert re.search(r"^\$BIN/gunicorn --bind ", run_script, re.M) and "wsgi" not in run_script
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert conf["wsgi_app"] == "cloudpacs.asgi:application"
    assert conf["worker_class"] == "cloudpacs.serving.worker.Worker"
    for role in APP_SERVICES:
        assert re.search(rf"^\s+{role}\)$", entrypoint, re.M), f"entrypoint has no role {role}"
    subprocess.run(["sh", "-n", str(DOCKER / "entrypoint.sh")], check=True)
    assert os.access(DOCKER / "entrypoint.sh", os.X_OK)


def closed_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthcheck(role: str, tmp_path, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("ALLOWED_HOSTS", "CLOUDPACS_ENV")}
    full.update(CLOUDPACS_VAR_DIR=str(tmp_path), **env)
    return subprocess.run([sys.executable, str(DOCKER / "healthcheck.py"), role], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=60)


def test_web_healthcheck_against_a_live_server(live_server, tmp_path):
    port = str(live_server.thread.port)
    assert healthcheck("web", tmp_path, PORT=port).returncode == 0
    down = healthcheck("web", tmp_path, PORT=str(closed_port()))
    assert down.returncode == 1 and "web unhealthy" in down.stderr


def test_gateway_healthcheck(tmp_path):
    with closing(socket.socket()) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        assert healthcheck("gateway", tmp_path, DICOM_PORT=str(listener.getsockname()[1])).returncode == 0
    assert healthcheck("gateway", tmp_path, DICOM_PORT=str(closed_port())).returncode == 1


def test_beat_healthcheck_needs_the_broker(tmp_path):
    assert healthcheck("beat", tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6379/15").returncode == 0
    down = healthcheck("beat", tmp_path, CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port()}/15")
    assert down.returncode == 1 and "beat unhealthy" in down.stderr


def test_healthcheck_refuses_an_unknown_role(tmp_path):
    assert healthcheck("nonsense", tmp_path).returncode == 2


def test_a_web_worker_imports_every_view_before_its_first_request(tmp_path):
    """gunicorn.conf.py's post_worker_init loads the URL configuration (every view), as a
    worker starts rather than in its first request."""
    script = (
        "import runpy, sys, django; django.setup()\n"
        "from django.urls import get_resolver\n"
        "assert not get_resolver()._populated and 'archive.dicomweb.wado' not in sys.modules\n"
        f"runpy.run_path({str(ROOT / 'gunicorn.conf.py')!r})['post_worker_init'](None)\n"
        "print(get_resolver()._populated, 'archive.dicomweb.wado' in sys.modules)\n")
    env = {**os.environ, "INGEST_PARSE_PROCESSES": "0", "CLOUDPACS_VAR_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]
