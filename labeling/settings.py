"""Preflab settings, read from the environment.

The defaults give the one-machine setup: SQLite and an embedded (filesystem) Celery
broker under ``var/``. Production sets ``DATABASE_URL`` (PostgreSQL) and
``CELERY_BROKER_URL`` (Redis or RabbitMQ).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from labeling.request_id import logging_config
from labeling.service_urls import cache_from_url, database_from_url, env_bool, var_dir

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = var_dir()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """Use DJANGO_SECRET_KEY; otherwise a random key kept under var/ (never a literal)."""
    key = os.environ.get("DJANGO_SECRET_KEY")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# A key from the environment is shared by every process; the var/ fallback is this machine's only, so
# production servers and workers refuse to start without the variable (labeling/security.py).
PREFLAB_SECRET_KEY_FROM_ENV = bool(os.environ.get("DJANGO_SECRET_KEY"))
# Off unless asked for: Django's debug page shows settings (the broker URL and its password, ...) to
# anyone who makes a request fail. `manage.py demo` turns it on for itself; developers set DJANGO_DEBUG=1.
DEBUG = env_bool("DJANGO_DEBUG", False)
# With debug on, this machine's names; in production none until DJANGO_ALLOWED_HOSTS names the site
# (a server refuses to start without it).
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # API keys: knox's hashed token model, extended by labeling.ApiKey (KNOX_TOKEN_MODEL below).
    "knox",
    # Login lockout after repeated failures (AXES_* below).
    "axes",
    "drf_spectacular",
    # Swagger UI's files, served from our own static files: /api/docs/ works without the internet.
    "drf_spectacular_sidecar",
    # Content-Security-Policy header (CONTENT_SECURITY_POLICY below).
    "csp",
    "labeling",
    "comparisons",
    "model_runner",
    "export",
]

MIDDLEWARE = [
    # First: /healthz and /readyz answer before the host check, the HTTPS redirect, login and throttles.
    "labeling.health.HealthMiddleware",
    # Then GET /metrics, as early and for the same reasons (labeling/metrics.py); scrapes and probes
    # are not counted in the request metrics that the two django-prometheus middlewares keep.
    "labeling.metrics.MetricsMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Next: an id per request, echoed in X-Request-ID, on every log line and carried into tasks.
    "labeling.request_id.RequestIdMiddleware",
    # A view that loses the database answers 503 + Retry-After, not 500 (labeling/unavailable.py).
    "labeling.unavailable.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who and from where, for the audit log (labeling.audit).
    "labeling.middleware.AuditContextMiddleware",
    "labeling.middleware.RequestTextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Requests, responses and latencies by view name (GET /metrics); before axes, which must be last.
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as axes asks: turns a locked-out login into the lockout answer (labeling.throttles).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "labeling.urls"
WSGI_APPLICATION = "labeling.wsgi.application"
ASGI_APPLICATION = "labeling.asgi.application"

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
            ],
        },
    }
]

DATABASES = {
    "default": database_from_url(os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'preflab.sqlite3'}"))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "labeling.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Django's four validators, wherever a password is set (API, admin, changepassword).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "labeling.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "labeling.schema.PreflabAutoSchema",
    "EXCEPTION_HANDLER": "labeling.errors.exception_handler",
    # No ?format= renderer override: DRF answered 404, before any permission check, to a route
    # whose own query has a `format` (the imports' file format). Ask with the Accept header.
    "URL_FORMAT_OVERRIDE": None,
    # DRF's parsers, refusing deep JSON and control characters in text (labeling.parsers).
    "DEFAULT_PARSER_CLASSES": [
        "labeling.parsers.JSONParser",
        "labeling.parsers.FormParser",
        "labeling.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Preflab API",
    "DESCRIPTION": "Human preference data for RLHF: prompts, candidates, queues, judgments, exports.",
    "VERSION": "1",
    # Choice sets that share a field name get names of their own in the schema.
    "ENUM_NAME_OVERRIDES": {
        "SessionStatusEnum": "labeling.models.sessions.Session.Status",
        "TurnStatusEnum": "labeling.models.sessions.Turn.Status",
        "TurnRoleEnum": "labeling.models.sessions.Turn.Role",
        "AttackStatusEnum": "labeling.models.redteam.Attack.Status",
        "AdversaryJobStatusEnum": "labeling.models.redteam.AdversaryJob.Status",
        "RedteamEvalRunStatusEnum": "labeling.models.redteam.RedteamEvalRun.Status",
    },
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No anchor links inside the operations' toggle buttons (a link in a button is unreachable to
    # keyboard and screen reader users), and examples as plain text (the highlighter's colours
    # fall below WCAG AA contrast).
    # No validator badge: Swagger UI would fetch it from validator.swagger.io (offline; CSP img-src).
    "SWAGGER_UI_SETTINGS": {
        "deepLinking": False,
        "syntaxHighlight": {"activated": False},
        "validatorUrl": None,
    },
}

# --- Celery -------------------------------------------------------------------------------
# Default: kombu's filesystem transport under var/, so one machine needs no broker server.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {}
if CELERY_BROKER_URL.startswith("filesystem"):
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Redelivery after a dead worker: longer than the longest batch.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    # The stall check loads no model: on default (an exact name wins over the pattern below).
    "model_runner.tasks.generation_batches_stalled_task": {"queue": "default"},
    # Generation batches: gpu, or the queue their generator is pinned to (Generator.queue).
    "model_runner.tasks.*": {"queue": "gpu"},
    # An export's reward-model check trains a model: gpu, like generation batches.
    "export.tasks.reward_check_task": {"queue": "gpu"},
    # The adversary (attacker and target models) and test-set runs: gpu, like generation batches.
    "labeling.tasks.adversary_job_run_task": {"queue": "gpu"},
    "labeling.tasks.redteam_eval_run_task": {"queue": "gpu"},
    # Conversation turns: their own queue and worker, never behind a bulk generation batch.
    "labeling.tasks.session_turn_generate_task": {"queue": "interactive"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULE = {
    "expire-leases": {"task": "labeling.tasks.assignments_expire_task", "schedule": 60.0},
    "reprioritize-adaptive-queues": {"task": "labeling.tasks.queues_reprioritize_task", "schedule": 120.0},
    # Queue statistics of active queues, computed ahead (labeling.selectors.queue_stats); default queue.
    "refresh-queue-stats": {"task": "labeling.tasks.queue_stats_refresh_task", "schedule": 120.0},
    # New judgments folded into the statistics' stored facts (labeling.services.stats_facts).
    "fold-judgment-facts": {"task": "labeling.tasks.judgment_facts_fold_task", "schedule": 60.0},
    # Ranking queues of safe-reply requests get their items once the job finishes.
    "build-safe-reply-queues": {"task": "labeling.tasks.redteam_safe_replies_build_task", "schedule": 60.0},
    "resend-stalled-generation-batches": {
        "task": "model_runner.tasks.generation_batches_stalled_task",
        "schedule": 60.0,
    },
}

# --- Preflab ------------------------------------------------------------------------------
PREFLAB_MODEL_CACHE = Path(os.environ.get("PREFLAB_MODEL_CACHE", VAR_DIR / "models"))
PREFLAB_EXPORT_ROOT = Path(os.environ.get("PREFLAB_EXPORT_ROOT", VAR_DIR / "exports"))
PREFLAB_IMPORT_ASYNC_BYTES = int(os.environ.get("PREFLAB_IMPORT_ASYNC_BYTES", str(8 * 1024 * 1024)))
PREFLAB_DEFAULT_LEASE_SECONDS = 15 * 60
# The generation page asks "are you sure?" before a job over more than this many prompts (0: never).
PREFLAB_CONFIRM_PROMPTS = int(os.environ.get("PREFLAB_CONFIRM_PROMPTS", "200"))
# Conversations: a turn a worker has held this long without answering is taken again (its worker
# died); and how many waiting turns of one template share a model batch.
PREFLAB_TURN_STALE_SECONDS = float(os.environ.get("PREFLAB_TURN_STALE_SECONDS", "120"))
PREFLAB_INTERACTIVE_BATCH = int(os.environ.get("PREFLAB_INTERACTIVE_BATCH", "8"))
# ... and how long a batch waits at most for the turns of the template's other trainers who are
# talking right now (labeling/services/session_generation.py); a lone trainer never waits.
PREFLAB_INTERACTIVE_GATHER_MS = int(os.environ.get("PREFLAB_INTERACTIVE_GATHER_MS", "500"))
# A generation batch a worker took and has saved nothing of for this long is sent again (its worker
# died: Redis would give it back only after the hour of its visibility timeout). Longer than the
# slowest model batch; model_runner/services/batch_claims.py.
PREFLAB_BATCH_STALL_SECONDS = float(os.environ.get("PREFLAB_BATCH_STALL_SECONDS", "300"))
# Red-teaming: the share of attack families held out as the red-team test set (the rest become
# training pairs), by a stable hash of each attack's family (labeling.selectors.redteam).
PREFLAB_REDTEAM_TEST_FRACTION = float(os.environ.get("PREFLAB_REDTEAM_TEST_FRACTION", "0.3"))
# Rater wellbeing: items shown with gaps under this many minutes count as one run ("in a row")
# for a queue's break_after (labeling.selectors.wellbeing); a longer gap counts as a break.
PREFLAB_BREAK_GAP_MINUTES = float(os.environ.get("PREFLAB_BREAK_GAP_MINUTES", "10"))
# Claims look for expired leases at most this often per queue and process (0 = every claim).
PREFLAB_LEASE_SCAN_SECONDS = float(os.environ.get("PREFLAB_LEASE_SCAN_SECONDS", "1"))
# openai generators: the worker variables an admin may name as api_key_env start with this prefix,
# and, when set, the endpoint hosts they may call (comma-separated; *.example.com, host:port).
PREFLAB_API_KEY_ENV_PREFIX = os.environ.get("PREFLAB_API_KEY_ENV_PREFIX", "PREFLAB_KEY_")
PREFLAB_ENDPOINT_HOSTS = [
    h.strip() for h in os.environ.get("PREFLAB_ENDPOINT_HOSTS", "").split(",") if h.strip()
]

# --- Security headers and HTTPS (docs/operations.md, "Running in production") ---------------
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Behind a TLS-terminating proxy: the header it sets on HTTPS requests (X-Forwarded-Proto: https).
# Only set it when the proxy always sets or strips that header itself.
if os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER"):
    _proxy_header = os.environ["DJANGO_SECURE_PROXY_SSL_HEADER"].strip().upper().replace("-", "_")
    SECURE_PROXY_SSL_HEADER = (f"HTTP_{_proxy_header}", "https")
# Redirect plain HTTP to HTTPS (off by default: `make serve` and bench_queue speak plain HTTP).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
# HTTP Strict Transport Security: seconds browsers keep to HTTPS only (0 = no header). Start small.
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# Content Security Policy (django-csp): every page's scripts and styles are files of our own; no
# inline script, style or event handler, nothing from another origin, no framing. Images: ours
# and data: URIs (the favicon placeholder, Swagger UI's icons).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- API keys, login abuse, the audit log (docs/operations.md, "Accounts and security") --------
# API keys (labeling.ApiKey, on knox's token model): "preflab_" and 64 random hex characters, shown
# once and stored as their SHA-512 digest; labeling.authentication reads them in one statement.
KNOX_TOKEN_MODEL = "labeling.ApiKey"
# knox's migrations would create its own (swapped-out) token table, with a key to the users that
# stops PostgreSQL from truncating them (manage.py flush, the test suite): knox gets no table.
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {"TOKEN_PREFIX": "preflab_", "AUTH_HEADER_PREFIX": "Token", "TOKEN_TTL": None}
# POST /api/v1/auth/token/ makes a key named "login" that lasts this many days; a user keeps at most
# this many login keys (a new one replaces the oldest), and at most this many named keys.
PREFLAB_LOGIN_KEY_DAYS = float(os.environ.get("PREFLAB_LOGIN_KEY_DAYS", "30"))
PREFLAB_LOGIN_KEYS_PER_USER = int(os.environ.get("PREFLAB_LOGIN_KEYS_PER_USER", "10"))
PREFLAB_API_KEYS_PER_USER = int(os.environ.get("PREFLAB_API_KEYS_PER_USER", "20"))
# A key's last use is written at most this often (not one write per request).
PREFLAB_API_KEY_TOUCH_SECONDS = 60


# Throttles and lockout counters live in the cache, which every web process must share.
CACHES = {"default": cache_from_url(os.environ.get("PREFLAB_CACHE_URL", f"file://{VAR_DIR / 'cache'}"))}
# Throttles (labeling.throttles): "N/s", "N/min", "N/h". POST queues/{id}/next/ per user, with a
# burst; login attempts (page and POST auth/token/) per client address and per account named.
PREFLAB_NEXT_RATE = os.environ.get("PREFLAB_NEXT_RATE", "5/s")
PREFLAB_NEXT_BURST = int(os.environ.get("PREFLAB_NEXT_BURST", "20"))
PREFLAB_LOGIN_RATE_ADDRESS = os.environ.get("PREFLAB_LOGIN_RATE_ADDRESS", "30/min")
PREFLAB_LOGIN_RATE_ACCOUNT = os.environ.get("PREFLAB_LOGIN_RATE_ACCOUNT", "10/min")
# Proxies in front of the web processes that append to X-Forwarded-For (0: the client address is
# the connection's). Throttles, lockouts and the audit log use the address this gives.
PREFLAB_PROXY_COUNT = int(os.environ.get("PREFLAB_PROXY_COUNT", "0"))
# Lockout (django-axes): this many failed logins for one username from one address lock that pair
# out for the cool-off; an admin unlocks earlier (Django admin "Access attempts", manage.py axes_reset).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out pair before any password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("PREFLAB_LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = float(os.environ.get("PREFLAB_LOGIN_COOLOFF_MINUTES", "15")) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_CALLABLE = "labeling.throttles.lockout_response"
AXES_CLIENT_IP_CALLABLE = "labeling.audit.client_address"
AXES_DISABLE_ACCESS_LOG = True  # logins are in the audit log
AXES_VERBOSE = False

# GET /metrics (labeling/metrics.py): with a token, only `Authorization: Bearer <token>`; without
# one, only unproxied requests from the loopback address.
PREFLAB_METRICS_TOKEN = os.environ.get("PREFLAB_METRICS_TOKEN", "")

# "text" (the default, for the demo): the message only. "json" (production): one JSON object per
# line with time, level, logger, message and request_id (labeling/request_id.py).
PREFLAB_LOG_FORMAT = os.environ.get("PREFLAB_LOG_FORMAT", "text").strip().lower()
LOGGING = logging_config(PREFLAB_LOG_FORMAT, os.environ.get("PREFLAB_LOG_LEVEL", "INFO"))
