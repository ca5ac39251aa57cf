"""The suite's one settings module, driven by environment variables.

Defaults run the demo on one machine (SQLite, Redis on 6379, Kafka on 9092).
`DJANGO_PROFILE=production` turns on every deployment safeguard; see deploy/README.md.
A bad value fails loudly with ImproperlyConfigured naming the variable.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
import ssl
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ImproperlyConfigured(f"Environment variable {name} is required but not set.")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"Environment variable {name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off.")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"Environment variable {name}={raw!r} is not an integer.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"Environment variable {name}={value} must be at least {minimum}.")
    return value


def env_int_optional(name: str, *, minimum: int = 0) -> int | None:
    """An integer, or None when the variable is unset or empty (the library's own default applies)."""
    if not os.environ.get(name):
        return None
    return env_int(name, 0, minimum=minimum)


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"Environment variable {name}={raw!r} is not a number.") from None
    if not value >= minimum:  # also refuses nan
        raise ImproperlyConfigured(f"Environment variable {name}={raw!r} must be a number of at least {minimum:g}.")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_choice(name: str, default: str, *, choices: tuple[str, ...], upper: bool = False) -> str:
    """One of `choices`, compared lower-cased (upper-cased with `upper`); unset or empty: `default`.

    Anything else raises ImproperlyConfigured naming the variable and the choices.
    """
    raw = os.environ.get(name, "").strip()
    value = (raw.upper() if upper else raw.lower()) or default
    if value not in choices:
        raise ImproperlyConfigured(f"Environment variable {name}={value!r} is not one of {', '.join(choices)}.")
    return value


def env_url(name: str, default: str, *, schemes: set[str]) -> str:
    value = env_str(name, default)
    parsed = urlparse(value)
    if parsed.scheme not in schemes or not parsed.hostname:
        allowed = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(f"Environment variable {name}={value!r} is not a valid URL (expected scheme {allowed} and a host).")
    try:
        parsed.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise ImproperlyConfigured(f"Environment variable {name}={value!r} has an invalid port.") from None
    return value


# --- Profile -----------------------------------------------------------------------------------
PROFILE = os.environ.get("DJANGO_PROFILE", "dev")
if PROFILE not in {"dev", "production"}:
    raise ImproperlyConfigured(f"Environment variable DJANGO_PROFILE={PROFILE!r} must be 'dev' or 'production'.")
PRODUCTION = PROFILE == "production"

if PRODUCTION:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure"):
        raise ImproperlyConfigured("Environment variable DJANGO_SECRET_KEY is too weak for production: use 50+ random characters.")
else:
    SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me-in-production-0123456789abcdef")

DEBUG = env_bool("DJANGO_DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("Environment variable DJANGO_ALLOWED_HOSTS is required in production (comma-separated host names).")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

# --- Applications ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "django_celery_beat",
    "apps.accounts",
    "apps.core",
    "apps.registry",
    "apps.support",
    "apps.sentiment",
    "apps.recommender",
    "apps.vectors",
    "axes",  # login lockout (AXES_* below); keep after the apps: its middleware goes last
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "apps.core.limits.BodyLimitMiddleware",  # before anything reads a body (CSRF reads forms)
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.core.middleware.SuiteErrorMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires: turns a locked-out login into its answer
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

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
                "apps.accounts.context_processors.roles",
            ],
        },
    },
]

# --- Database: SQLite by default, PostgreSQL (or any dj-database-url URL) via DATABASE_URL ------
VAR_DIR = Path(os.environ.get("SUITE_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)
REGISTRY_DIR = Path(os.environ.get("SUITE_REGISTRY_DIR", VAR_DIR / "registry"))  # adapter artifacts, one folder per version
# Largest CSV/TSV/JSON Lines file any import reads (services.tabular): a guard against a wrong file, not a quota.
TABULAR_MAX_BYTES = env_int("TABULAR_MAX_BYTES", 512 * 1024 * 1024, minimum=1)
_default_db = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
# Persistent connections: 0 (the default) closes each request's or task's connection at its end. The web server is
# ASGI (Daphne), where Django runs every request's ORM work on a fresh thread: a connection kept for reuse there is
# never reused, only left open until garbage collection, and PostgreSQL runs out of connections (Django's docs: off
# under ASGI). A worker or consumer process alone may set it (seconds); reused connections are checked first.
DATABASE_CONN_MAX_AGE_S = env_int("DATABASE_CONN_MAX_AGE_S", 0)
# PostgreSQL only: how long a new connection may take before the request or task fails with an error naming the host.
DATABASE_CONNECT_TIMEOUT_S = env_int("DATABASE_CONNECT_TIMEOUT_S", 10, minimum=1)
try:
    DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL") or _default_db,
                                                  conn_max_age=DATABASE_CONN_MAX_AGE_S,
                                                  conn_health_checks=DATABASE_CONN_MAX_AGE_S > 0)}
except Exception as exc:  # dj-database-url raises ValueError / UnknownSchemeError
    raise ImproperlyConfigured(f"Environment variable DATABASE_URL is invalid: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT_S)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, consumer) share the demo's SQLite file: wait on locks.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker, channel layer, cache -------------------------------------------------
REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", schemes={"redis", "rediss"})
# REDIS_URL forms: redis://host:6379/0, redis://:PASSWORD@host:6379/0 (or redis://USER:PASSWORD@... with Redis ACLs),
# rediss://:PASSWORD@host:6380/0 (TLS). A password with reserved characters is percent-encoded in the URL. Over TLS
# the server's certificate is checked (REDIS_SSL_CERT_REQS) against REDIS_SSL_CA_CERTS (empty: the system's CAs);
# both ride in the URL's query, which Celery's result backend, the cache, the channel layer and the health checks
# read alike, and in CELERY_BROKER_USE_SSL for the broker.
REDIS_SSL_CERT_REQS = os.environ.get("REDIS_SSL_CERT_REQS", "").strip().lower()
REDIS_SSL_CA_CERTS = os.environ.get("REDIS_SSL_CA_CERTS", "")
if urlparse(REDIS_URL).scheme == "rediss":
    REDIS_SSL_CERT_REQS = env_choice("REDIS_SSL_CERT_REQS", "required", choices=("required", "optional", "none"))
    if REDIS_SSL_CA_CERTS and not Path(REDIS_SSL_CA_CERTS).is_file():
        raise ImproperlyConfigured(f"Environment variable REDIS_SSL_CA_CERTS={REDIS_SSL_CA_CERTS!r} is not a readable file on this host.")
    _redis_query = dict(parse_qsl(urlparse(REDIS_URL).query))
    _redis_query.setdefault("ssl_cert_reqs", REDIS_SSL_CERT_REQS)
    if REDIS_SSL_CA_CERTS:
        _redis_query.setdefault("ssl_ca_certs", REDIS_SSL_CA_CERTS)
    REDIS_URL = urlunparse(urlparse(REDIS_URL)._replace(query=urlencode(_redis_query)))
else:
    for _name, _value in (("REDIS_SSL_CERT_REQS", REDIS_SSL_CERT_REQS), ("REDIS_SSL_CA_CERTS", REDIS_SSL_CA_CERTS)):
        if _value:
            raise ImproperlyConfigured(f"Environment variable {_name} is set but REDIS_URL is not a rediss:// (TLS) URL.")
KAFKA_BOOTSTRAP_SERVERS = env_str("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
for _server in KAFKA_BOOTSTRAP_SERVERS.split(","):
    _host, _, _port = _server.strip().rpartition(":")
    if not _host or not _port.isdigit():
        raise ImproperlyConfigured(
            f"Environment variable KAFKA_BOOTSTRAP_SERVERS={KAFKA_BOOTSTRAP_SERVERS!r} must be host:port[,host:port...]."
        )

# Kafka security: services/kafka_config.py turns these into the options of every producer, consumer and admin client.
# PLAINTEXT (dev, tests); SSL (TLS, optionally a client certificate); SASL_SSL (a user and password over TLS: the usual
# production choice); SASL_PLAINTEXT (a password in clear: a private network only). TLS files are paths on each host.
KAFKA_SECURITY_PROTOCOL = env_choice("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", upper=True,
                                     choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))
KAFKA_SASL_MECHANISM = env_choice("KAFKA_SASL_MECHANISM", "PLAIN", upper=True,
                                  choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
KAFKA_SASL_USERNAME = os.environ.get("KAFKA_SASL_USERNAME", "")
KAFKA_SASL_PASSWORD = os.environ.get("KAFKA_SASL_PASSWORD", "")
for _name, _value in (("KAFKA_SASL_USERNAME", KAFKA_SASL_USERNAME), ("KAFKA_SASL_PASSWORD", KAFKA_SASL_PASSWORD)):
    if KAFKA_SECURITY_PROTOCOL.startswith("SASL_") and not _value:
        raise ImproperlyConfigured(f"Environment variable {_name} is required with KAFKA_SECURITY_PROTOCOL={KAFKA_SECURITY_PROTOCOL}.")
    if not KAFKA_SECURITY_PROTOCOL.startswith("SASL_") and _value:  # set but unused: the operator meant SASL
        raise ImproperlyConfigured(f"Environment variable {_name} is set but KAFKA_SECURITY_PROTOCOL={KAFKA_SECURITY_PROTOCOL} does not "
                                   "use SASL (set it to SASL_SSL or SASL_PLAINTEXT).")
KAFKA_SSL_CAFILE = os.environ.get("KAFKA_SSL_CAFILE", "")  # empty: the system's CA certificates
KAFKA_SSL_CERTFILE = os.environ.get("KAFKA_SSL_CERTFILE", "")  # a client certificate (PEM), for brokers that require one
KAFKA_SSL_KEYFILE = os.environ.get("KAFKA_SSL_KEYFILE", "")  # its private key, when not in the certificate file
for _name, _value in (("KAFKA_SSL_CAFILE", KAFKA_SSL_CAFILE), ("KAFKA_SSL_CERTFILE", KAFKA_SSL_CERTFILE),
                      ("KAFKA_SSL_KEYFILE", KAFKA_SSL_KEYFILE)):
    if _value and not KAFKA_SECURITY_PROTOCOL.endswith("SSL"):
        raise ImproperlyConfigured(f"Environment variable {_name} is set but KAFKA_SECURITY_PROTOCOL={KAFKA_SECURITY_PROTOCOL} does not "
                                   "use TLS (set it to SSL or SASL_SSL).")
    if _value and not Path(_value).is_file():
        raise ImproperlyConfigured(f"Environment variable {_name}={_value!r} is not a readable file on this host.")
if KAFKA_SSL_KEYFILE and not KAFKA_SSL_CERTFILE:
    raise ImproperlyConfigured("Environment variable KAFKA_SSL_KEYFILE is set without KAFKA_SSL_CERTFILE (the client certificate).")

# Market sentiment: topics are <prefix>.raw / .scored / .dlq; tests and benchmarks use their own prefix.
NEWS_TOPIC_PREFIX = os.environ.get("NEWS_TOPIC_PREFIX", "news")
if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", NEWS_TOPIC_PREFIX):
    raise ImproperlyConfigured(f"Environment variable NEWS_TOPIC_PREFIX={NEWS_TOPIC_PREFIX!r} must be letters, digits, '.', '_' or '-' (a Kafka topic name).")
NEWS_TOPIC_PARTITIONS = env_int("NEWS_TOPIC_PARTITIONS", 6, minimum=1)  # partitions of a new topic: how many consumers can share the work
# Copies of each partition on a new topic: 1 for a single broker (dev, tests); 3 on a production cluster, so that one
# broker can fail without losing a message. Kafka refuses a topic with more replicas than it has brokers.
NEWS_TOPIC_REPLICATION = env_int("NEWS_TOPIC_REPLICATION", 1, minimum=1)
SENTIMENT_WEBHOOK_RETRIES = env_int("SENTIMENT_WEBHOOK_RETRIES", 3, minimum=0)  # retries after the first attempt
NEWS_MODEL_RETRIES = env_int("NEWS_MODEL_RETRIES", 3, minimum=0)  # retries of a headline the model fails on, then news.dlq
NEWS_MODEL_RETRY_BACKOFF_S = env_float("NEWS_MODEL_RETRY_BACKOFF_S", 0.5)  # first wait before such a retry; doubles
NEWS_FUTURE_TOLERANCE_S = env_float("NEWS_FUTURE_TOLERANCE_S", 300.0)  # a headline dated further ahead is clamped to its arrival
# Each news consumer publishes its partitions' lag in Redis this often (0: never); an entry is stale after 3 periods.
NEWS_LAG_PUBLISH_S = env_float("NEWS_LAG_PUBLISH_S", 5.0)
# Alert deliveries (an outbox: services/sentiment/channels.py): each (alert, channel) is a row made with the alert and
# sent by a Celery task; a pending row whose task is this many seconds overdue is sent again by a beat task.
SENTIMENT_DELIVERY_REQUEUE_S = env_int("SENTIMENT_DELIVERY_REQUEUE_S", 300, minimum=10)

# --- Outbound HTTP (services/outbound.py: alert webhooks, feed polling) --------------------------------------
# Public addresses only: SUITE_OUTBOUND_ALLOW lists exceptions, host names or addresses/CIDR ranges (comma-separated;
# empty by default, so loopback, private, link-local and metadata addresses are refused).
SUITE_OUTBOUND_ALLOW = env_list("SUITE_OUTBOUND_ALLOW", "")
for _entry in SUITE_OUTBOUND_ALLOW:
    try:
        ipaddress.ip_network(_entry, strict=False)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}", _entry):
            raise ImproperlyConfigured(f"Environment variable SUITE_OUTBOUND_ALLOW: {_entry!r} is neither a host name nor an "
                                       "IP address or CIDR range.") from None
SUITE_OUTBOUND_CONNECT_TIMEOUT_S = env_float("SUITE_OUTBOUND_CONNECT_TIMEOUT_S", 5.0, minimum=0.01)
SUITE_OUTBOUND_READ_TIMEOUT_S = env_float("SUITE_OUTBOUND_READ_TIMEOUT_S", 10.0, minimum=0.01)  # silence between reads
SUITE_OUTBOUND_DEADLINE_S = env_float("SUITE_OUTBOUND_DEADLINE_S", 30.0, minimum=0.01)  # one whole request and answer
SUITE_OUTBOUND_MAX_BYTES = env_int("SUITE_OUTBOUND_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)  # a body, as sent and decompressed
SUITE_OUTBOUND_MAX_REDIRECTS = env_int("SUITE_OUTBOUND_MAX_REDIRECTS", 3, minimum=0)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "suite",
        "TIMEOUT": 300,
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "suite-asgi"},
    }
}

# --- Celery ------------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
if urlparse(REDIS_URL).scheme == "rediss":  # the broker (kombu) takes TLS options from here, not from the URL's query
    CELERY_BROKER_USE_SSL = {"ssl_cert_reqs": {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL,
                                               "none": ssl.CERT_NONE}[REDIS_SSL_CERT_REQS]}
    if REDIS_SSL_CA_CERTS:
        CELERY_BROKER_USE_SSL["ssl_ca_certs"] = REDIS_SSL_CA_CERTS
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "inference.*": {"queue": "inference"},
    "training.*": {"queue": "training"},
    "vectors.*": {"queue": "inference"},  # embedding, re-embedding after a promotion, IVF snapshots, purge
    "support.index_rebuild": {"queue": "inference"},  # re-embeds a knowledge base (pipelines/support_index.py)
    "support.vectors_repair": {"queue": "inference"},  # embeds KB items a killed host left without a vector
}
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the task to be redelivered
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Fail fast (a few seconds) instead of hanging when a web request cannot reach the broker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Time limits per task (config/celery.py gives each task its queue's, or its own by name): past the soft limit the
# task gets SoftTimeLimitExceeded (in every pool: config/celery.py raises it in a thread pool's task thread); past
# the soft limit plus the grace a prefork worker kills it. Inference answers fast; feeds and index builds are
# bounded; training runs long.
SUITE_TASK_TIME_LIMITS_S = {
    "inference": env_int("SUITE_TASK_LIMIT_INFERENCE_S", 120, minimum=1),
    "default": env_int("SUITE_TASK_LIMIT_DEFAULT_S", 300, minimum=1),
    "training": env_int("SUITE_TASK_LIMIT_TRAINING_S", 6 * 3600, minimum=1),
    "support.index_rebuild": env_int("SUITE_TASK_LIMIT_INDEX_REBUILD_S", 3600, minimum=1),
}
SUITE_TASK_TIME_LIMIT_GRACE_S = env_int("SUITE_TASK_LIMIT_GRACE_S", 30, minimum=1)
# Tasks are acknowledged late (CELERY_TASK_ACKS_LATE: a worker killed mid-task leaves the task to be run again), and
# Redis hands an unacknowledged task to another worker once it has been out for the broker's visibility_timeout. It
# must outlast the longest hard limit, or a training run still going is started a second time beside itself. Unset:
# the longest hard limit plus 10 minutes. A value not longer than the longest hard limit is refused.
_TASK_LONGEST_S = max(SUITE_TASK_TIME_LIMITS_S.values()) + SUITE_TASK_TIME_LIMIT_GRACE_S
CELERY_VISIBILITY_TIMEOUT_S = env_int_optional("CELERY_VISIBILITY_TIMEOUT_S", minimum=1)
if CELERY_VISIBILITY_TIMEOUT_S is None:
    CELERY_VISIBILITY_TIMEOUT_S = _TASK_LONGEST_S + 600
elif CELERY_VISIBILITY_TIMEOUT_S <= _TASK_LONGEST_S:
    raise ImproperlyConfigured(
        f"Environment variable CELERY_VISIBILITY_TIMEOUT_S={CELERY_VISIBILITY_TIMEOUT_S} must be longer than the longest task's "
        f"hard time limit ({_TASK_LONGEST_S} s: the largest SUITE_TASK_LIMIT_*_S plus SUITE_TASK_LIMIT_GRACE_S), or a task "
        "still running would be delivered to a second worker.")
CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = CELERY_VISIBILITY_TIMEOUT_S
HEARTBEAT_SECONDS = env_int("SUITE_HEARTBEAT_SECONDS", 5, minimum=1)
FEED_POLL_SECONDS = env_int("SENTIMENT_FEED_POLL_SECONDS", 300, minimum=10)
CELERY_BEAT_SCHEDULE = {
    "core-heartbeat": {"task": "core.heartbeat_publish", "schedule": float(HEARTBEAT_SECONDS)},
    "sentiment-feeds-poll": {"task": "sentiment.feeds_poll", "schedule": float(FEED_POLL_SECONDS)},
    "sentiment-deliveries-requeue": {"task": "sentiment.deliveries_requeue", "schedule": 60.0},
}

# Periodic re-fine-tuning (services/registry/retrain.py): a run trains only with this many new feedback examples
# (or --force); its per-task lock lapses this long after the holder's last heartbeat (a crashed worker's lock too).
RETRAIN_MIN_EXAMPLES = env_int("RETRAIN_MIN_EXAMPLES", 20, minimum=1)
RETRAIN_LOCK_TTL_S = env_int("RETRAIN_LOCK_TTL_S", 300, minimum=5)
RETRAIN_EPOCHS = env_int("RETRAIN_EPOCHS", 0, minimum=0)  # 0: the training config's own epoch bound
RETRAIN_RECOMMENDER_K = env_int("RETRAIN_RECOMMENDER_K", 10, minimum=1)  # cut-off of the recommender's held-back ranking metrics
RECOMMENDER_EMBED_REPAIR_S = env_int("RECOMMENDER_EMBED_REPAIR_S", 900, minimum=10)  # beat: items whose embedding is missing or stale re-embedded this often
RECOMMENDER_BEHAVIOUR_REFRESH_S = env_int("RECOMMENDER_BEHAVIOUR_REFRESH_S", 900, minimum=10)  # beat: behaviour sources and ranker refitted this often
RECOMMENDER_IMPRESSIONS_DRAIN_S = env_int("RECOMMENDER_IMPRESSIONS_DRAIN_S", 10, minimum=1)  # beat: impressions queued in Redis written to the database this often
# The retrainable tasks: one plug-in each (services/registry/retraining.py Retrainer), imported lazily by dotted path.
# Adding a task is one new plug-in file plus its line here (docs/ARCHITECTURE.md, "Retraining: one plug-in per task").
RETRAIN_PLUGINS = [
    "services.sentiment.retraining.SentimentRetrainer",
    "services.sentiment.retraining.TopicRetrainer",
    "services.support.retraining.IntentRetrainer",
    "services.support.retraining.RerankRetrainer",
    "services.support.retraining.RetrievalRetrainer",
    "services.recommender.retraining.RecommenderRetrainer",
]

# --- Inference (services/registry/serving.py, services/ml/device.py) ------------------------------
# services/heap.py: after a process loads a model, a vector index or the recommender's snapshot, collect once and
# freeze what is alive so the garbage collector's full passes (150 ms with a 100k-item catalogue) skip it.
SUITE_GC_FREEZE = env_bool("SUITE_GC_FREEZE", True)
SUITE_RESOLVE_TTL_S = env_float("SUITE_RESOLVE_TTL_S", 2.0)  # seconds: how soon a promotion reaches a running process
# Micro-batching: longest wait for company, in milliseconds. Short, because requests that arrive while a forward pass
# runs are grouped anyway; a lone request should not pay for waiting (5 ms cost a third of batch-1 throughput on CPU).
SUITE_BATCH_WAIT_MS = env_float("SUITE_BATCH_WAIT_MS", 1.0)
SUITE_BATCH_MAX = env_int("SUITE_BATCH_MAX", 64, minimum=1)  # most texts in one forward pass
SUITE_TORCH_THREADS = env_int_optional("SUITE_TORCH_THREADS", minimum=1)  # CPU threads torch may use; None: torch's default



# Where tensors run (services/ml/device.py): auto takes CUDA when present; cuda without one fails at first use.
SUITE_DEVICE = env_choice("SUITE_DEVICE", "auto", choices=("auto", "cpu", "cuda"))
# CUDA compute dtype under autocast; auto: bf16 where supported, else fp16. The CPU always computes in float32.
SUITE_DTYPE = env_choice("SUITE_DTYPE", "auto", choices=("auto", "float32", "bfloat16", "float16"))
# CPU serving: int8 dynamic quantisation of the base encoder's nn.Linear layers (services/ml/runtime.py).
SUITE_QUANTIZE = env_choice("SUITE_QUANTIZE", "none", choices=("none", "int8"))
# Classifier tasks served from their own copy of the base with the LoRA merged in (no adapter switch or LoRA branches per
# call, one more base in memory each, in the processes that call the task): those called on every support message
# (intent, the ranking stage's cross-encoder) and on every headline (sentiment, topic). Float32 unless
# SUITE_QUANTIZE=int8 (int8 reordered the cross-encoder's candidates: docs/PERFORMANCE.md, "Cross-encoder latency").
SUITE_MERGED_TASKS = env_list("SUITE_MERGED_TASKS", "rerank,intent,sentiment,topic")
# The engine of those merged copies on the CPU in float32: ONNX Runtime (about twice eager PyTorch's speed for MiniLM,
# same float32 weights, outputs within ~1e-5: services/ml/onnx_engine.py) or torch. CUDA and int8 always run torch.
SUITE_CPU_ENGINE = env_choice("SUITE_CPU_ENGINE", "onnxruntime", choices=("onnxruntime", "torch"))

# --- Auth --------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
API_TOKEN_DAYS = env_int("API_TOKEN_DAYS", 90, minimum=0)  # lifetime of a new API token (api_token_create --days); 0: never expires

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiTokenAuthentication",  # hashed, expiring, scoped tokens (apps/accounts/models.py)
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "apps.core.schema.SuiteAutoSchema",  # documents the one error shape on every operation
    "EXCEPTION_HANDLER": "apps.core.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # DRF's get_ident believes X-Forwarded-For blindly when this is None; 0 ignores it. The suite's throttles
    # (apps.core.clients) read SUITE_TRUSTED_PROXIES instead; this guards any DRF throttle added without them.
    "NUM_PROXIES": 0,
}
# --- Abuse limits: client addresses, throttles, login lockout, request bodies ---------------------------
def env_networks(name: str) -> list[str]:
    """Comma-separated addresses or CIDR ranges (10.0.0.0/8, ::1); each is checked here, not at first use."""
    import ipaddress

    items = env_list(name, "")
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"Environment variable {name}: {item!r} is not an IP address or CIDR range.") from None
    return items


def env_rate(name: str, default: str) -> str:
    """A DRF throttle rate, N/second, N/minute, N/hour or N/day (what DRF's parse_rate reads)."""
    value = os.environ.get(name) or default
    if not re.fullmatch(r"\s*\d+\s*/[smhd].*", value):
        raise ImproperlyConfigured(f"Environment variable {name}={value!r} must be N/second, N/minute, N/hour or N/day.")
    return value


# The reverse proxies in front of the suite. Empty (the default): the client is the TCP peer and X-Forwarded-For
# is ignored, since anyone can write it. Set, a peer in these ranges is believed about the address it forwards
# (apps/core/clients.py). Throttles and the login lockout both use that address.
SUITE_TRUSTED_PROXIES = env_networks("SUITE_TRUSTED_PROXIES")
# The anonymous support API: per client address (SUPPORT_CUSTOMER_RATE, with the support settings) and per
# conversation, whatever the address it comes from.
SUPPORT_CONVERSATION_RATE = env_rate("SUPPORT_CONVERSATION_RATE", "20/minute")
# Login lockout (django-axes): this many failed sign-ins for one username from one client address lock that
# pair out for the cool-off; a right password during it is refused too. A success clears the count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("SUITE_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_int("SUITE_LOGIN_COOLOFF_MINUTES", 15, minimum=1) / 60.0  # hours, as a float (axes' unit)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "apps.core.clients.axes_client_ip"
AXES_LOCKOUT_CALLABLE = "apps.accounts.lockout.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # its start-up banner on every process; lockouts are still logged
# Request bodies (apps/core/limits.py): the largest body of any request, refused with 413 before it is read
# or parsed, whatever Content-Length claims; the recommender's bulk writes (POST /api/items, /api/events) have
# their own, larger limit. Django's own limit on bodies read into memory matches the larger of the two.
SUITE_MAX_JSON_BYTES = env_int("SUITE_MAX_JSON_BYTES", 1024 * 1024, minimum=1024)
SUITE_MAX_BULK_JSON_BYTES = env_int("SUITE_MAX_BULK_JSON_BYTES", 16 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(SUITE_MAX_JSON_BYTES, SUITE_MAX_BULK_JSON_BYTES)

SPECTACULAR_SETTINGS = {
    "TITLE": "Sector AI suite API",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# --- I18N, static ------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns on every request when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": VAR_DIR / "media"}},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security: all on in production (check --deploy stays clean) --------------------------------
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")

LOG_LEVEL = os.environ.get("DJANGO_LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in logging.getLevelNamesMapping():
    raise ImproperlyConfigured(f"Environment variable DJANGO_LOG_LEVEL={LOG_LEVEL!r} must be DEBUG, INFO, WARNING, ERROR or CRITICAL.")
# SUITE_LOG_FORMAT: "text" (a line a person reads) or "json" (one JSON object per line, for a log shipper).
SUITE_LOG_FORMAT = env_choice("SUITE_LOG_FORMAT", "text", choices=("text", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                 "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json" if SUITE_LOG_FORMAT == "json" else "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"kafka": {"level": "WARNING"}, "faiss": {"level": "WARNING"}},  # faiss logs its loader at INFO on import
}

# --- Operators' endpoints (apps/core/operators.py) ----------------------------------------------
# /metrics is off (404) while SUITE_METRICS_TOKEN is empty; set, Prometheus sends `Authorization: Bearer <token>`.
SUITE_METRICS_TOKEN = os.environ.get("SUITE_METRICS_TOKEN", "").strip()
if SUITE_METRICS_TOKEN and len(SUITE_METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("Environment variable SUITE_METRICS_TOKEN is too short: use 16+ random characters (or leave it empty to turn /metrics off).")
SUITE_READY_TIMEOUT_S = env_float("SUITE_READY_TIMEOUT_S", 1.0, minimum=0.1)  # per backing service in /readyz
# A Celery worker serves its own series (inference it ran, tasks by outcome) on http://ADDR:PORT/ when PORT is set.
SUITE_WORKER_METRICS_PORT = env_int("SUITE_WORKER_METRICS_PORT", 0)  # 0: no exporter
if SUITE_WORKER_METRICS_PORT > 65535:
    raise ImproperlyConfigured(f"Environment variable SUITE_WORKER_METRICS_PORT={SUITE_WORKER_METRICS_PORT} is not a port (1-65535, or 0 for off).")
SUITE_WORKER_METRICS_ADDR = os.environ.get("SUITE_WORKER_METRICS_ADDR", "").strip() or "127.0.0.1"
try:
    ipaddress.ip_address(SUITE_WORKER_METRICS_ADDR)
except ValueError:
    raise ImproperlyConfigured(f"Environment variable SUITE_WORKER_METRICS_ADDR={SUITE_WORKER_METRICS_ADDR!r} is not an IP address "
                               "(127.0.0.1, a private interface's address, or 0.0.0.0 for all).") from None
# Probes speak plain HTTP to the process (a load balancer's health check, a kubelet): never redirect them to https.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# --- Support desk ------------------------------------------------------------------------------
def _env_fraction(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ImproperlyConfigured(f"Environment variable {name}={raw!r} is not a number.") from None
    if not 0.0 <= value <= 1.0:
        raise ImproperlyConfigured(f"Environment variable {name}={value} must be between 0 and 1.")
    return value


SUPPORT_CONFIDENCE_THRESHOLD = _env_fraction("SUPPORT_CONFIDENCE_THRESHOLD", 0.45)  # below: "not sure" + handoff
SUPPORT_INTENT_MIN_PROB = _env_fraction("SUPPORT_INTENT_MIN_PROB", 0.6)  # calibrated intent top probability below: out of scope (docs/PERFORMANCE.md)
SUPPORT_MESSAGE_MAX_CHARS = env_int("SUPPORT_MESSAGE_MAX_CHARS", 2000, minimum=1)
# Conversation (services/support/answering.py): the best two candidates closer than this rank score margin are offered
# as choices (Rasa's ambiguity threshold; 0 = never); intents the model maps to "talk to a person" hand off at once,
# or after the customer confirms (SUPPORT_HANDOFF_CONFIRM); a learned ranking scorer (dotted path, "" = none).
SUPPORT_AMBIGUITY_MARGIN = _env_fraction("SUPPORT_AMBIGUITY_MARGIN", 0.05)
SUPPORT_HANDOFF_INTENTS = env_list("SUPPORT_HANDOFF_INTENTS", "talk_to_human,human_agent,speak_to_agent,agent")
SUPPORT_HANDOFF_CONFIRM = env_bool("SUPPORT_HANDOFF_CONFIRM", False)
SUPPORT_RERANK_SCORER = os.environ.get("SUPPORT_RERANK_SCORER", "")
# The `rerank` cross-encoder (services/support/rerank.py), the learned scorer whenever that task has a champion: it
# scores the first SUPPORT_RERANK_TOP fused candidates of a question (one batched call; latency grows with it), and
# a retraining run builds at most SUPPORT_RERANK_MAX_PAIRS pairs from the knowledge bases (a seeded sample of queries).
SUPPORT_RERANK_TOP = env_int("SUPPORT_RERANK_TOP", 10, minimum=0)  # 0: the cross-encoder is not used
SUPPORT_RERANK_MAX_PAIRS = env_int("SUPPORT_RERANK_MAX_PAIRS", 4000, minimum=10)
# Routing of handed-off conversations (services/support/assignment.py): "team:intent|intent,team:intent" where a team
# is a Django group of agents; a conversation whose intent a team covers goes to its least busy available member,
# any other (or when no member is available) to the least busy available agent; "" = no teams.
SUPPORT_TEAMS = os.environ.get("SUPPORT_TEAMS", "")
if SUPPORT_TEAMS and not re.fullmatch(r"\s*[\w .-]+:[\w|-]+(\s*,\s*[\w .-]+:[\w|-]+)*\s*", SUPPORT_TEAMS):
    raise ImproperlyConfigured(f"Environment variable SUPPORT_TEAMS={SUPPORT_TEAMS!r} must read team:intent|intent,team:intent.")
# Sites that may embed the customer widget (support/embed.js, an iframe of /support/widget/): origins such as
# https://shop.example.com, comma-separated; "" = none (the page keeps X-Frame-Options DENY).
SUPPORT_WIDGET_ORIGINS = env_list("SUPPORT_WIDGET_ORIGINS", "")
for _origin in SUPPORT_WIDGET_ORIGINS:
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d+)?", _origin):
        raise ImproperlyConfigured(f"Environment variable SUPPORT_WIDGET_ORIGINS: {_origin!r} must be an origin like https://shop.example.com (scheme and host, no path).")
SUPPORT_EMBED_TASK = os.environ.get("SUPPORT_EMBED_TASK", "")  # "" = the default base encoder; or a pairs task's champion
SUPPORT_INDEX_LEASE_S = env_int("SUPPORT_INDEX_LEASE_S", 120, minimum=2)  # a KB rebuild's lease: lapses this long after its last renewal (a killed rebuild)
SUPPORT_EMBED_REPAIR_S = env_int("SUPPORT_EMBED_REPAIR_S", 900, minimum=10)  # beat: KB items whose vector is missing or stale (a host killed mid-write) re-embedded this often
# Vector indexes (services/vectors/index.py; the support KBs' and the recommender's): exact search below the
# threshold (ms at that size), IVF with √n lists past it; nprobe lists visited per query (recall vs speed);
# FAISS threads per search (one query at a time is the serving pattern: more threads cost more than they save).
SUPPORT_IVF_THRESHOLD = env_int("SUPPORT_IVF_THRESHOLD", 20000, minimum=1)
SUPPORT_IVF_NPROBE = env_int("SUPPORT_IVF_NPROBE", 16, minimum=1)
SUPPORT_FAISS_THREADS = env_int("SUPPORT_FAISS_THREADS", 1, minimum=1)

# --- Shared vectors (services/vectors/store.py: the database holds every embedding; each process an index of it) ---
# Where `vectors_request` embeds changed rows: "worker" (the Celery task vectors.embed on the inference queue) or
# "process" (now, in the calling process: one host without a worker, and most tests).
SUITE_VECTORS_EMBED = env_choice("SUITE_VECTORS_EMBED", "worker", choices=("worker", "process"))
SUITE_VECTORS_SYNC_S = env_float("SUITE_VECTORS_SYNC_S", 1.0)  # seconds: a process looks for newer vectors at most this often per space
SUITE_VECTORS_PURGE_S = env_int("SUITE_VECTORS_PURGE_S", 3600, minimum=10)  # deleted vectors' tombstones kept this long; also the beat's purge period
SUITE_VECTORS_CHECK_S = env_int("SUITE_VECTORS_CHECK_S", 300, minimum=10)  # beat: a missed encoder switch (promotion) is noticed this often
SUPPORT_CUSTOMER_RATE = os.environ.get("SUPPORT_CUSTOMER_RATE", "30/minute")  # DRF throttle for anonymous customers
if not re.fullmatch(r"\s*\d+\s*/[smhd].*", SUPPORT_CUSTOMER_RATE):  # what DRF's parse_rate reads: N/<s|m|h|d...>
    raise ImproperlyConfigured(f"Environment variable SUPPORT_CUSTOMER_RATE={SUPPORT_CUSTOMER_RATE!r} must be N/second, N/minute, N/hour or N/day.")
# Masking (services/support/masking.py): national-format phone numbers are read as numbers of this region
# (numbers written with + or 00 are found whatever it is).
SUPPORT_PHONE_REGION = os.environ.get("SUPPORT_PHONE_REGION", "US").upper()
if not re.fullmatch(r"[A-Z]{2}", SUPPORT_PHONE_REGION):
    raise ImproperlyConfigured(f"Environment variable SUPPORT_PHONE_REGION={SUPPORT_PHONE_REGION!r} must be a two-letter region code (US, GB, DE...).")
# Retention (services/support/retention.py conversation_retention_apply, a nightly beat task): conversations idle
# longer than this many days are anonymised (texts masked again, the customer's token replaced) or deleted.
# 0 = kept forever: how long support records may be kept is the operator's legal decision, so it is not guessed.
SUPPORT_RETENTION_DAYS = env_int("SUPPORT_RETENTION_DAYS", 0, minimum=0)
SUPPORT_RETENTION_ACTION = env_choice("SUPPORT_RETENTION_ACTION", "anonymise", choices=("anonymise", "delete"))
