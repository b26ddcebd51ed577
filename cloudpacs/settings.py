"""CloudPACS settings: one file for every environment, driven by environment variables.

With nothing set, the app runs in its embedded mode (SQLite and local folders under
var/, a Celery broker that needs no server). CLOUDPACS_ENV=production turns on the
checks that refuse unsafe configurations.
"""

import os
import sys
from pathlib import Path

import dj_database_url
from botocore.config import Config as BotoConfig
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from cloudpacs.env import envbool, envint, envlist, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("CLOUDPACS_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

CLOUDPACS_ENV = envstr("CLOUDPACS_ENV", "development")
PRODUCTION = CLOUDPACS_ENV == "production"
INSECURE_DEFAULT_SECRET = "insecure-embedded-default-secret-key-change-me"

SECRET_KEY = envstr("SECRET_KEY", INSECURE_DEFAULT_SECRET)
# Off unless asked for: debug pages show settings, and debug mode keeps every SQL query
# in memory (the DICOM gateway has no requests to reset that list).
DEBUG = envbool("DEBUG", default=False)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
SITE_URL = envstr("SITE_URL", "http://127.0.0.1:8000")

if PRODUCTION:
    problems = []
    if DEBUG:
        problems.append("DEBUG is on")
    if SECRET_KEY == INSECURE_DEFAULT_SECRET or len(SECRET_KEY) < 32:
        problems.append("SECRET_KEY is the default or shorter than 32 characters")
    if not ALLOWED_HOSTS:
        problems.append("ALLOWED_HOSTS is empty")
    if not envstr("CLOUDPACS_MASTER_KEY"):
        problems.append("CLOUDPACS_MASTER_KEY (base64 of 32 bytes) is not set")
    if problems:
        raise ImproperlyConfigured("Refusing to start in production: " + "; ".join(problems))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Redoc for /api/docs/ from our own static files, not a CDN
    "csp",
    "tenants",
    "archive",
    # The archive's parts with models, tasks or pages of their own (archive/<name>/).
    "archive.outbox",
    "archive.storage",
    "archive.retention",
    "archive.gateway",
    "archive.upload",
    "archive.download",
    "archive.viewer",
    "archive.sharing",
    "archive.reports",
    "archive.corrections",
    "billing",
    "edge",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Early, so that responses the middleware below answers by itself (a tenant's 404, static
    # files) carry the policy too.
    "csp.middleware.CSPMiddleware",
    # WhiteNoise, serving the OHIF viewer's files (archive/viewer/) beside the static files.
    "archive.viewer.files.StaticAndViewerFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Automatic logoff after SESSION_IDLE_MINUTES without a request (before the clinic is
    # resolved: the request then goes on as anyone's without a session would).
    "tenants.idle_logoff.IdleLogoffMiddleware",
    # Before CSRF: a request it authenticates with a valid API token of the clinic in the
    # URL carries no cookie credentials, and only such a request skips the CSRF check.
    "tenants.middleware.TenantMiddleware",
    # Pages of a signed-in person or a share's visitor: no-store (patient data).
    "tenants.private_pages.PrivatePagesMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "cloudpacs.urls"
WSGI_APPLICATION = "cloudpacs.wsgi.application"
ASGI_APPLICATION = "cloudpacs.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.tenant_context",
                "billing.context_processors.billing_banner",
                "billing.context_processors.billing_overview",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'cloudpacs.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql") and envint("DB_POOL_MAX_SIZE", 10) > 0:
    # Under ASGI each request runs in a thread of its own, and a connection a thread kept
    # would outlive it unclosed: connections come from a pool per process instead
    # (psycopg's, through Django), which also bounds how many one process opens.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1, "max_size": envint("DB_POOL_MAX_SIZE", 10), "timeout": 30}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL lets the web process and the Celery worker use the file at the same time.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # One test database file per test run (pytest process), so two suites run at once on
    # one checkout never share or destroy each other's database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "tenants.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# The test suite hashes with MD5: Argon2's ~0.5 s a password was paid by nearly every test.
# pytest reads these settings before any conftest, so it is seen here; the servers and
# commands the tests start get CLOUDPACS_TEST_FAST_HASHER from tests/conftest.py. Never in
# production.
if not PRODUCTION and ("pytest" in sys.modules or envbool("CLOUDPACS_TEST_FAST_HASHER")):
    PASSWORD_HASHERS.insert(0, "django.contrib.auth.hashers.MD5PasswordHasher")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Password reset links work once, for this long (Django's token); requests per client
# address and emails per account address are limited per hour (tenants/password_reset.py).
PASSWORD_RESET_TIMEOUT = envint("PASSWORD_RESET_TIMEOUT", 24 * 3600)
PASSWORD_RESET_IP_LIMIT = envint("PASSWORD_RESET_IP_LIMIT", 20)
PASSWORD_RESET_EMAIL_LIMIT = envint("PASSWORD_RESET_EMAIL_LIMIT", 3)

# Login throttling: this many failures for one account locks it for LOCKOUT_MINUTES.
LOGIN_MAX_FAILURES = envint("LOGIN_MAX_FAILURES", 5)
LOGIN_LOCKOUT_MINUTES = envint("LOGIN_LOCKOUT_MINUTES", 15)
# Per client IP: this many failed logins within the window block further tries from it.
# How many reverse proxies in front of the app append to X-Forwarded-For (0: none).
TRUSTED_PROXY_COUNT = envint("TRUSTED_PROXY_COUNT", 1 if PRODUCTION else 0)

# A cache shared by all processes (login throttling counts must be): Redis when
# CACHE_URL is set, else a folder under var/.
CACHE_URL = envstr("CACHE_URL")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
          "LOCATION": str(VAR_DIR / "cache")}
}

# Platform operators must use two-factor authentication for the Django admin too.
ADMIN_REQUIRE_2FA = envbool("ADMIN_REQUIRE_2FA", True)

LOGIN_IP_MAX_FAILURES = envint("LOGIN_IP_MAX_FAILURES", 30)
LOGIN_IP_WINDOW_MINUTES = envint("LOGIN_IP_WINDOW_MINUTES", 15)
INVITATION_VALID_DAYS = envint("INVITATION_VALID_DAYS", 7)
# A clinic with one admin deletes a study after this many days in which every member who
# may delete can cancel it (archive/retention/deletion.py); with two admins, one approves.
DELETION_COOLING_OFF_DAYS = envint("DELETION_COOLING_OFF_DAYS", 7)
# A signed report attached as a PDF (archive/reports/) is at most this large.
REPORT_PDF_MAX_BYTES = envint("REPORT_PDF_MAX_BYTES", 20 * 1024 * 1024)
OTP_TOTP_ISSUER = "CloudPACS"

# Django's database sessions and ModelBackend, with their look-ups on every signed-in request
# compiled once (tenants/session_store.py, tenants/auth_backend.py).
SESSION_ENGINE = "tenants.session_store"
# Flash messages live in the session (the database), not in a cookie: one names the patient
# a series was moved to, and a cookie is signed, not encrypted, and kept by the browser.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
AUTHENTICATION_BACKENDS = ["tenants.auth_backend.UserBackend"]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 8 * 3600)
# Automatic logoff: a session with no request for this long ends (0: never; tenants/idle_logoff.py).
SESSION_IDLE_MINUTES = envint("SESSION_IDLE_MINUTES", 60)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    # The proxy's word on the scheme is taken only when there is a proxy: without one, any
    # client could claim HTTPS by sending the header itself.
    if TRUSTED_PROXY_COUNT:
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    # Health checks inside the container speak plain HTTP to the app, past the TLS proxy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)  # hard to undo: opt in
# Content-Security-Policy (django-csp): scripts, styles, images, fonts and connections from our
# own origin only, no inline script or style (templates/ and static/ have none, a test checks),
# no plugins, no framing, forms submit only to us.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(VAR_DIR / "media")}},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}


def _region_storage(region: str) -> dict:
    """A region is S3 (django-storages + boto3) when its bucket is set, else a local folder."""
    prefix = f"STORAGE_{region.upper()}_"
    bucket = envstr(prefix + "BUCKET")
    if not bucket:
        return {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": envstr(prefix + "PATH", str(VAR_DIR / "storage" / region)),
                            "allow_overwrite": True}}
    options = {
        "bucket_name": bucket,
        "endpoint_url": envstr(prefix + "ENDPOINT") or None,
        "region_name": envstr(prefix + "REGION") or None,
        "access_key": envstr(prefix + "ACCESS_KEY") or None,
        "secret_key": envstr(prefix + "SECRET_KEY") or None,
        "file_overwrite": True,
        "default_acl": None,
        "querystring_auth": True,
        # django-storages reads its addressing_style and signature_version options only
        # when it builds the client config itself: with ours they go in the config.
        # Fail fast on an endpoint that hangs; the pipeline retries with backoff.
        # Path style for a store of one's own (SeaweedFS, MinIO, Ceph: an endpoint given),
        # boto3's own choice for AWS itself.
        "client_config": BotoConfig(s3={"addressing_style": envstr(
                                        prefix + "ADDRESSING_STYLE",
                                        "path" if envstr(prefix + "ENDPOINT") else "auto")},
                                    signature_version="s3v4",
                                    connect_timeout=envint("STORAGE_CONNECT_TIMEOUT", 5),
                                    read_timeout=envint("STORAGE_READ_TIMEOUT", 60),
                                    retries={"max_attempts": 3, "mode": "standard"}),
    }
    sse = envstr(prefix + "SSE")  # bucket-side encryption as a second layer, e.g. "AES256"
    if sse:
        options["object_parameters"] = {"ServerSideEncryption": sse}
    return {"BACKEND": "cloudpacs.objectstore.s3.RegionS3Storage", "OPTIONS": options}


# Tier 1: local disk where instances land (fsynced) before their copies reach both regions.
TIER1_PATH = envstr("TIER1_PATH", str(VAR_DIR / "tier1"))
INGEST_TMP_DIR = envstr("INGEST_TMP_DIR", str(VAR_DIR / "tmp"))
# A form upload larger than FILE_UPLOAD_MAX_MEMORY_SIZE (a report's PDF) is spooled here,
# on the disk kept for uploads and swept of leftovers, not in the system's /tmp.
FILE_UPLOAD_TEMP_DIR = INGEST_TMP_DIR
try:  # the web server makes it too; a process that cannot (a read-only build step) goes on
    Path(INGEST_TMP_DIR).mkdir(parents=True, exist_ok=True)
except OSError:
    pass
INGEST_MAX_INSTANCE_BYTES = envint("INGEST_MAX_INSTANCE_BYTES", 4 * 1024**3)
# A deflated data set is inflated whole in memory (by pydicom, at ingest and on reads):
# refuse one that inflates beyond this. Deflate is used for small objects such as reports.
INGEST_MAX_INFLATED_BYTES = envint("INGEST_MAX_INFLATED_BYTES", 64 * 1024**2)
# Processes per web worker that parse STOW-RS parts while the rest of the body arrives
# (archive.ingest.parse_ahead); 0 parses on the request's thread.
INGEST_PARSE_PROCESSES = envint("INGEST_PARSE_PROCESSES", 1)
# Serving (cloudpacs.serving): a request body that sends nothing for this long is dropped
# (408), and one client (credential, and address) holds at most this many uploads open.
UPLOAD_IDLE_TIMEOUT = envint("UPLOAD_IDLE_TIMEOUT", 30)
STOW_MAX_CONCURRENT = envint("STOW_MAX_CONCURRENT", 8)
UPLOAD_SLOTS_FILE = envstr("UPLOAD_SLOTS_FILE", str(VAR_DIR / "run" / "upload-slots"))
# WADO-RS refuses (413) a request that would need more of an instance in memory than this.
WADO_MAX_DECODE_BYTES = envint("WADO_MAX_DECODE_BYTES", 512 * 1024**2)
# Browser upload (tus resumable uploads): one folder per clinic, random ids, no PHI in paths.
UPLOAD_DIR = envstr("UPLOAD_DIR", str(VAR_DIR / "uploads"))
UPLOAD_MAX_BYTES = envint("UPLOAD_MAX_BYTES", 16 * 1024**3)  # one file or zip
UPLOAD_EXPIRY_HOURS = envint("UPLOAD_EXPIRY_HOURS", 24)  # unfinished uploads are removed after
# Zip limits against zip bombs: total unpacked bytes, members, and unpacked/packed ratio.
UPLOAD_ZIP_MAX_TOTAL_BYTES = envint("UPLOAD_ZIP_MAX_TOTAL_BYTES", 64 * 1024**3)
UPLOAD_ZIP_MAX_MEMBERS = envint("UPLOAD_ZIP_MAX_MEMBERS", 100_000)
UPLOAD_ZIP_MAX_RATIO = envint("UPLOAD_ZIP_MAX_RATIO", 200)

# DICOM gateway (C-STORE): one port for all clinics; the called AE title selects the clinic.
DICOM_HOST = envstr("DICOM_HOST", "127.0.0.1")
DICOM_PORT = envint("DICOM_PORT", 11112)
DICOM_MAX_ASSOCIATIONS = envint("DICOM_MAX_ASSOCIATIONS", 20)
# DICOM over TLS on a second port, when a PEM certificate and key are given
# (archive/gateway/tls.py); with a CA file, peers must present a certificate it signed.
DICOM_TLS_PORT = envint("DICOM_TLS_PORT", 2762)
DICOM_TLS_CERT = envstr("DICOM_TLS_CERT", "")
DICOM_TLS_KEY = envstr("DICOM_TLS_KEY", "")
DICOM_TLS_CA = envstr("DICOM_TLS_CA", "")

# Instances the archive pipeline uploads at once, per worker process (each to both regions).
STORAGE_UPLOAD_THREADS = envint("STORAGE_UPLOAD_THREADS", 4)
STORAGES["primary"] = _region_storage("primary")
STORAGES["secondary"] = _region_storage("secondary")
WHITENOISE_USE_FINDERS = True
# The prebuilt OHIF viewer, installed by `make viewer` (scripts/install_viewer.py) into
# <VIEWER_DIR>/<version>/; outside var/'s data so tests' own VAR_DIRs share one copy.
VIEWER_DIR = envstr("VIEWER_DIR", str(BASE_DIR / "var" / "ohif"))

# Email (invitations, password resets, share links): a mail server once EMAIL_HOST is set,
# else the console (which prints each message; production never sends a link through it).
EMAIL_HOST = envstr("EMAIL_HOST", "")
EMAIL_PORT = envint("EMAIL_PORT", 587)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", not envbool("EMAIL_USE_SSL", False))
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 10)
EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
                       else "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "CloudPACS <no-reply@cloudpacs.local>")

# Celery. The embedded default is kombu's filesystem transport: a broker that needs
# no server, shared by the web process and the worker through folders under var/.
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "celery-broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # An empty queue is polled this often (kombu's default, 1 s, is a wait between each
        # step of the archive pipeline: 300 instances took five minutes to reach both regions).
        "polling_interval": 0.05,
    }
# The worker's CPU priority (os.nice increment; 0 leaves it as started). Archiving is
# background work: on a busy host the acknowledgements a sender waits for go first, and the
# worker still has every idle cycle (cloudpacs/celery.py).
WORKER_NICE = envint("WORKER_NICE", 10)
CELERY_TASK_DEFAULT_QUEUE = envstr("CELERY_TASK_DEFAULT_QUEUE", "cloudpacs")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "outbox-sweep": {"task": "outbox.sweep", "schedule": 60.0},
    "archive-fixity-audit": {"task": "archive.fixity_audit",
                             "schedule": float(envint("FIXITY_AUDIT_INTERVAL_SECONDS", 24 * 3600))},
    "archive-evict-tier1": {"task": "archive.evict_tier1", "schedule": 3600.0},
    "archive-expire-uploads": {"task": "archive.expire_uploads", "schedule": 3600.0},
    "archive-sweep-leftovers": {"task": "archive.sweep_leftovers", "schedule": 3600.0},
    "archive-storage-cold-move": {"task": "archive.storage_cold_move", "schedule": 24 * 3600.0},
    "archive-exports-expire": {"task": "archive.exports_expire", "schedule": 3600.0},
    "archive-deletions-due": {"task": "archive.deletions_due", "schedule": 900.0},
    "archive-corrections-orphaned": {"task": "archive.corrections_orphaned", "schedule": 900.0},
}
# Audit anchors: each clinic's chain head, signed, written to both regions this often; events
# deleted within one interval after they were written can go unnoticed.
AUDIT_ANCHOR_INTERVAL_SECONDS = envint("AUDIT_ANCHOR_INTERVAL_SECONDS", 600)
CELERY_BEAT_SCHEDULE["tenants-audit-anchor"] = {"task": "tenants.audit_anchor",
                                                "schedule": float(AUDIT_ANCHOR_INTERVAL_SECONDS)}
CELERY_BEAT_SCHEDULE["tenants-sessions-clear"] = {"task": "tenants.sessions_clear", "schedule": 24 * 3600.0}
# A per-image door (frames, bulk data, renderings) read again by the same reader, for the
# same study, within this many seconds is covered by the event of its first read: a viewer
# asks for hundreds of frames per study. 0 writes an event for every request.
PHI_READ_REPEAT_SECONDS = envint("PHI_READ_REPEAT_SECONDS", 60)

# Durable storage. The master key wraps every clinic's data keys; it never enters the
# database. Embedded mode generates MASTER_KEY_FILE once (production requires the variable).
CLOUDPACS_MASTER_KEY = envstr("CLOUDPACS_MASTER_KEY")
MASTER_KEY_FILE = envstr("MASTER_KEY_FILE", str(VAR_DIR / "master.key"))
# While the master key is rotated (manage.py rotate_master_key): the new key, given to every
# process before the command runs, so data keys already re-wrapped with it stay readable.
CLOUDPACS_MASTER_KEY_NEXT = envstr("CLOUDPACS_MASTER_KEY_NEXT")
# The audit log's own keys (base64 of 64 bytes), pinned when the master key is first
# rotated; until then they are derived from the master key (tenants/audit_keys.py).
CLOUDPACS_AUDIT_KEYS = envstr("CLOUDPACS_AUDIT_KEYS")
AUDIT_KEYS_FILE = envstr("AUDIT_KEYS_FILE", str(VAR_DIR / "audit.keys"))
# An outbox row (of any kind) not done and untouched this long is re-driven by the sweeper.
STORAGE_SWEEP_IDLE_SECONDS = envint("STORAGE_SWEEP_IDLE_SECONDS", 300)
# Outbox rows committed within this many milliseconds go to the workers in one message
# (archive/outbox/publisher.py); 0 publishes each commit's rows at once.
OUTBOX_PUBLISH_WINDOW_MS = envint("OUTBOX_PUBLISH_WINDOW_MS", 250)
STORAGE_TASK_MAX_RETRIES = envint("STORAGE_TASK_MAX_RETRIES", 6)
STORAGE_TASK_RETRY_BACKOFF_MAX = envint("STORAGE_TASK_RETRY_BACKOFF_MAX", 300)
# What an acknowledgement waits for (archive/storage/durability.py): "local", the encrypted
# file flushed in this node's tier 1; "primary", also confirmed in a region (the primary,
# else the secondary), which several web nodes and workers on other hosts need.
INGEST_DURABILITY = envstr("INGEST_DURABILITY", "local")
# A clinic's export requested on its settings page is kept (encrypted) this many days.
EXPORT_KEEP_DAYS = envint("EXPORT_KEEP_DAYS", 7)
# Storage classes (archive/storage/classes.py): the class a clinic's old copies move to,
# and the prices per GB-month the operator's page estimates costs with (USD, S3's list
# prices of 2026 for us-east-1 by default; set your provider's).
STORAGE_COLD_CLASS = envstr("STORAGE_COLD_CLASS", "STANDARD_IA")
STORAGE_PRICES_GB_MONTH = envstr("STORAGE_PRICES_GB_MONTH", "STANDARD=0.023,STANDARD_IA=0.0125,GLACIER_IR=0.004")
# A re-encoded instance's superseded objects are removed this long after the swap (readers
# that opened them first finish).
STORAGE_DROP_GRACE_SECONDS = envint("STORAGE_DROP_GRACE_SECONDS", 3600)
# Tier 1 keeps studies this many days after ingest (and always until both regions verified).
TIER1_KEEP_DAYS = envint("TIER1_KEEP_DAYS", 30)
# Leftovers sweep (archive.storage.leftovers): tier-1 files no index row owns are removed
# once this old (an ingest commits its rows seconds after placing its files); files in
# INGEST_TMP_DIR outside a live process's folder once this old.
TIER1_ORPHAN_GRACE_SECONDS = envint("TIER1_ORPHAN_GRACE_SECONDS", 3600)
SPOOL_SWEEP_AFTER_SECONDS = envint("SPOOL_SWEEP_AFTER_SECONDS", 6 * 3600)
# Instances re-read per fixity run (oldest-checked first); 0 = all.
FIXITY_AUDIT_BATCH = envint("FIXITY_AUDIT_BATCH", 0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.api_auth.TenantRequestAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CloudPACS clinic API",
    "DESCRIPTION": "REST API of a CloudPACS clinic, under /t/<slug>/api/.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from our static files (drf-spectacular-sidecar): no CDN sees who reads the docs.
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"share_links": {"()": "cloudpacs.log_redaction.RedactShareLinks"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["share_links"]}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    # pynetdicom logs every C-STORE at INFO (with UIDs): too much, and too close to PHI.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "pynetdicom": {"level": "WARNING"}},
}

# Share links (archive/sharing/): default lifetime, and the lockout after wrong access checks.
SHARE_DEFAULT_DAYS = envint("SHARE_DEFAULT_DAYS", 30)
SHARE_MAX_DAYS = envint("SHARE_MAX_DAYS", 365)
SHARE_MAX_FAILURES = envint("SHARE_MAX_FAILURES", 5)
SHARE_LOCKOUT_MINUTES = envint("SHARE_LOCKOUT_MINUTES", 15)  # doubled at each further lockout
SHARE_IP_MAX_FAILURES = envint("SHARE_IP_MAX_FAILURES", 30)  # wrong answers per address per hour, all links

# C-FIND answers at most this many matches, then says there are more (archive/gateway/find.py).
DICOM_FIND_MAX_RESULTS = envint("DICOM_FIND_MAX_RESULTS", 1000)
# Addresses C-MOVE destinations and storage commitment reports may not be sent to, whatever
# a clinic typed (archive/gateway/destinations.py): loopback and link-local by default.
DICOM_DESTINATIONS_DENY = envstr("DICOM_DESTINATIONS_DENY", "127.0.0.0/8,::1/128,169.254.0.0/16,fe80::/10,0.0.0.0/8")
# Storage commitment (archive/gateway/commitment.py): how long the gateway keeps watching a
# request to answer on its own association; when still-unverified instances fail; how many
# instances one request may name.
DICOM_COMMIT_WAIT_SECONDS = envint("DICOM_COMMIT_WAIT_SECONDS", 30)
DICOM_COMMIT_MAX_WATCHERS = envint("DICOM_COMMIT_MAX_WATCHERS", 8)  # per gateway process
DICOM_COMMIT_TIMEOUT_HOURS = envint("DICOM_COMMIT_TIMEOUT_HOURS", 24)
DICOM_COMMIT_MAX_ITEMS = envint("DICOM_COMMIT_MAX_ITEMS", 10000)

# Billing (billing/): Stripe is off until STRIPE_SECRET_KEY is set; charges are recorded
# and priced either way, and sent once a key is configured.
STRIPE_SECRET_KEY = envstr("STRIPE_SECRET_KEY", "")
STRIPE_PUBLISHABLE_KEY = envstr("STRIPE_PUBLISHABLE_KEY", "")
STRIPE_WEBHOOK_SECRET = envstr("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = envstr("STRIPE_API_BASE", "")  # empty: Stripe's own; tests point it at localstripe
STRIPE_JS_URL = envstr("STRIPE_JS_URL", "https://js.stripe.com/v3/")
STRIPE_NETWORK_RETRIES = envint("STRIPE_NETWORK_RETRIES", 2)
STRIPE_WEBHOOK_TOLERANCE = envint("STRIPE_WEBHOOK_TOLERANCE", 300)  # seconds a signed event stays valid
BILLING_GRACE_DAYS = envint("BILLING_GRACE_DAYS", 14)
# A study is priced once nothing has arrived for it for this long (its size and modalities
# are known then).
BILLING_SETTLE_SECONDS = envint("BILLING_SETTLE_SECONDS", 60)
CELERY_BEAT_SCHEDULE["billing-send-unsent"] = {"task": "billing.send_unsent", "schedule": 300.0}
CELERY_BEAT_SCHEDULE["billing-invoice-month"] = {"task": "billing.invoice_month", "schedule": 3600.0}
