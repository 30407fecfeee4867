"""Settings for voiceroom, read from the environment through one reader (django-environ).

Every variable is listed in `.env.example`. Production secrets have no default: with
DEBUG off, a missing DJANGO_SECRET_KEY stops the process with a clear message; with DEBUG
on, the process makes up a random key of its own (never a constant) and warns.
"""

import logging
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from realtime.redis_client import ConfigError, RedisConfig

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Production mode (DJANGO_DEBUG off) refuses to start "
            "without a secret key: set DJANGO_SECRET_KEY to a long random string, or set "
            "DJANGO_DEBUG=1 for local development."
        )
    # Never a constant: a key anyone can read lets anyone sign tickets and sessions for
    # any user. A random key per process is safe, but only this process knows it.
    SECRET_KEY = secrets.token_urlsafe(50)
    logging.getLogger("voiceroom.settings").warning(
        "DJANGO_SECRET_KEY is not set: using a random key for this process only. Sessions "
        "and tickets will not survive a restart nor work across nodes or worker processes; "
        "set DJANGO_SECRET_KEY (make run writes one into .env.dev)."
    )

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
# Origins that browsers may open sockets from, beside ALLOWED_HOSTS (see rooms/ws/auth.py).
VOICEROOM_ALLOWED_ORIGINS = env.list("VOICEROOM_ALLOWED_ORIGINS", default=[])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

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
    # Swagger UI's files, served by the node itself: /api/docs/ works without internet and
    # runs no third-party script.
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "rooms",
    # The webhook outbox (webhooks/: events stored with the change, delivered by the nodes).
    "webhooks",
    # django-axes (the admin's sign-in lockout), see voiceroom/adminlock.py.
    "voiceroom.axes_app.AxesConfig",
]

MIDDLEWARE = [
    "voiceroom.middleware.JsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as axes asks: turns a lockout flagged during sign-in into its 429 page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "voiceroom.adminlock.AdminLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "voiceroom.urls"

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
    },
]

ASGI_APPLICATION = "voiceroom.asgi.application"

# Database: DATABASE_URL unset means a SQLite file next to manage.py.
DATABASES: dict[str, dict[str, Any]] = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"charset": "utf8mb4", "init_command": "SET sql_mode='STRICT_TRANS_TABLES'"}
    )
    DATABASES["default"].setdefault("TEST", {}).update(
        {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    )
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers (REST requests, sockets) queue for the write lock instead of
    # failing with "database is locked": IMMEDIATE takes it at BEGIN, WAL lets readers on.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=0))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The JavaScript client and the demo page's code are served from clients/ as
# /static/js/voiceroom.js and /static/demo/...; the finder leaves out what is not for
# browsers (the SDK's tests and node_modules, the mini-program example).
STATICFILES_DIRS = [BASE_DIR / "clients"]
STATICFILES_FINDERS = [
    "voiceroom.staticfiles.ClientsFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
]
# Report evidence and recordings go to the "default" storage: local files under
# MEDIA_ROOT unless configured otherwise (S3 through django-storages: docs/recording.md).
# They are served only through the API and the admin (access checked), never at MEDIA_URL.
MEDIA_ROOT = env.str("VOICEROOM_MEDIA_ROOT", default=str(BASE_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True

# Redis: unset means one node with the in-process channel layer and in-process presence.
# With REDIS_SENTINELS and REDIS_SENTINEL_MASTER every connection goes to the master the
# sentinels name and follows failovers; REDIS_URL then gives only db, user and password.
# Every Redis client is built from REDIS by realtime/redis_client.py.
REDIS_URL = env.str("REDIS_URL", default="")
REDIS_SENTINELS = env.str("REDIS_SENTINELS", default="")
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="")
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
VOICEROOM_REDIS_PREFIX = env.str("VOICEROOM_REDIS_PREFIX", default="vr")
try:
    REDIS = RedisConfig.from_env(
        REDIS_URL, REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD
    )
except ConfigError as e:
    raise ImproperlyConfigured(str(e)) from None

if REDIS is not None:
    # The pub/sub layer: a group_send is one PUBLISH that every subscribed node receives
    # once; nothing is stored per channel, so a dead node leaves no group members behind.
    # Why this layer and not the core one: docs/benchmarks.md, "Channel layer".
    # Annotated once for both branches: the CONFIG shape differs between the layers.
    CHANNEL_LAYERS: dict[str, dict[str, Any]] = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [REDIS.channel_layer_host()],
                "prefix": VOICEROOM_REDIS_PREFIX,
            },
        }
    }
    # Django's RedisCache (through Sentinel when configured), one client per process
    # (voiceroom/cache.py says why).
    CACHES = {
        "default": {
            **REDIS.cache_settings(VOICEROOM_REDIS_PREFIX),
            "BACKEND": "voiceroom.cache.SharedRedisCache",
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def _on_off(name: str, default: bool) -> bool:
    raw = env.str(name, default="on" if default else "off").strip().lower()
    if raw in ("on", "1", "true", "yes"):
        return True
    if raw in ("off", "0", "false", "no"):
        return False
    raise ImproperlyConfigured(f"{name} must be on or off, not {raw!r}.")


def _rate(name: str, default: str) -> str:
    value = env.str(name, default=default).strip()
    if not re.fullmatch(r"[0-9]+/(s|sec|m|min|h|hour|d|day)", value):
        raise ImproperlyConfigured(f"{name} must look like 10/min (per s, min, hour or day).")
    return value


# The throttles of the contract (login, register, join with a room password, the admin's
# sign-in form): on by default; off only for load tests (voiceroom/throttling.py).
VOICEROOM_THROTTLES = _on_off("VOICEROOM_THROTTLES", default=True)
# How many reverse proxies (nginx) stand in front of the nodes: the client address is then
# taken from X-Forwarded-For that far back, and the header is never trusted at 0
# (voiceroom.throttling.client_address, for every throttle and the admin's lockout).
VOICEROOM_TRUSTED_PROXIES = env.int("VOICEROOM_TRUSTED_PROXIES", default=0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env.int("VOICEROOM_PAGE_SIZE", default=50),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "voiceroom.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        # Per client address, every attempt (login and WeChat sign-in share it).
        "login": _rate("VOICEROOM_LOGIN_THROTTLE", "10/min"),
        # Per client address, every attempt.
        "register": _rate("VOICEROOM_REGISTER_THROTTLE", "20/hour"),
        # Joining a private room: wrong passwords per user and room...
        "join_password": _rate("VOICEROOM_JOIN_PASSWORD_THROTTLE", "10/hour"),
        # ...and every password checked, per client address.
        "join_password_address": _rate("VOICEROOM_JOIN_PASSWORD_ADDRESS_THROTTLE", "60/hour"),
        # Reports, per reporting user (contract v1.1: 429 past 10 a minute).
        "report": _rate("VOICEROOM_REPORT_THROTTLE", "10/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_PARSER_CLASSES": [
        "voiceroom.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # The same rule as voiceroom.throttling.client_address, for any DRF throttle.
    "NUM_PROXIES": VOICEROOM_TRUSTED_PROXIES,
}

# The admin's sign-in form (django-axes, voiceroom/adminlock.py): after this many failed
# sign-ins from one client address, that address is locked out for the cool-off; every
# attempt while locked out starts it again. Counts are in the database (axes' tables).
AXES_ENABLED = VOICEROOM_THROTTLES
AXES_FAILURE_LIMIT = env.int("VOICEROOM_ADMIN_LOGIN_FAILURES", default=5)
AXES_COOLOFF_TIME = timedelta(seconds=env.int("VOICEROOM_ADMIN_LOCKOUT_S", default=900))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_CLIENT_IP_CALLABLE = "voiceroom.throttling.client_address"
AXES_LOCKOUT_CALLABLE = "voiceroom.adminlock.lockout_response"
AXES_ONLY_ADMIN_SITE = True
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Never stored in axes' records in clear (the password always is masked).
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]

SPECTACULAR_SETTINGS = {
    "TITLE": "voiceroom API",
    "DESCRIPTION": "Voice chat rooms: REST API. The WebSocket protocol is in docs/protocol.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "voiceroom.openapi.add_common_errors",
    ],
}

# WeChat mini-program sign-in (POST /api/auth/wechat): unset app id or secret turns it off.
VOICEROOM_WECHAT_APP_ID = env.str("VOICEROOM_WECHAT_APP_ID", default="")
VOICEROOM_WECHAT_APP_SECRET = env.str("VOICEROOM_WECHAT_APP_SECRET", default="")
VOICEROOM_WECHAT_API_BASE = env.str(
    "VOICEROOM_WECHAT_API_BASE", default="https://api.weixin.qq.com"
)
VOICEROOM_WECHAT_TIMEOUT_S = env.float("VOICEROOM_WECHAT_TIMEOUT_S", default=5.0)

# API tokens (Authorization: Token ...) expire this many seconds after they were issued;
# signing in again gives a new one. Default: 30 days.
VOICEROOM_TOKEN_TTL_S = env.int("VOICEROOM_TOKEN_TTL_S", default=30 * 24 * 3600)

# Realtime settings.
VOICEROOM_RESUME_WINDOW_S = env.int("VOICEROOM_RESUME_WINDOW_S", default=20)
VOICEROOM_TICKET_TTL_S = env.int("VOICEROOM_TICKET_TTL_S", default=60)
VOICEROOM_NODE_HEARTBEAT_S = env.float("VOICEROOM_NODE_HEARTBEAT_S", default=2.0)
VOICEROOM_NODE_DEAD_AFTER_S = env.float("VOICEROOM_NODE_DEAD_AFTER_S", default=6.0)
# Placement (contract v1.1): this node's public base URL, http(s)://host[:port][/prefix].
# Set on every node (with Redis), each room gets a home node and `ws_url` names it;
# unset, `ws_url` is the path /ws/rooms/{id}/ and any node serves any room.
VOICEROOM_NODE_URL = env.str("VOICEROOM_NODE_URL", default="")
# Sockets a node is meant to hold: placement puts new rooms only on nodes below it.
VOICEROOM_NODE_CAPACITY = env.int("VOICEROOM_NODE_CAPACITY", default=5000)
# Shed new voice frames while the event loop runs this late (overload); 0 turns it off.
VOICEROOM_SHED_AFTER_LAG_MS = env.int("VOICEROOM_SHED_AFTER_LAG_MS", default=150)
# A socket whose server-side send buffer stays full (the client stopped reading) or that
# stays stuck closing for this long is aborted; its member enters the resume window.
VOICEROOM_STALLED_SOCKET_CLOSE_S = env.float("VOICEROOM_STALLED_SOCKET_CLOSE_S", default=10.0)
# How often each node re-reads who may speak, so a lost mute event cannot leave a member
# heard: a muted member is silenced within this period plus one read (0: events only).
VOICEROOM_SPEAK_RECHECK_S = env.float("VOICEROOM_SPEAK_RECHECK_S", default=2.0)
# Where recording tracks are written while they grow when the storage has no local path
# (S3...): uploaded to the storage when the recording stops (docs/recording.md).
VOICEROOM_RECORDING_SPOOL = env.str("VOICEROOM_RECORDING_SPOOL", default="")
# Room sockets one node accepts per user (all rooms) and per client address; 0: no limit.
VOICEROOM_MAX_SOCKETS_PER_USER = env.int("VOICEROOM_MAX_SOCKETS_PER_USER", default=5)
VOICEROOM_MAX_SOCKETS_PER_ADDRESS = env.int("VOICEROOM_MAX_SOCKETS_PER_ADDRESS", default=100)
# uvicorn (realtime.servers.uvicorn protocol): a connection must send a request's headers within
# this many seconds of connecting (slow or silent clients, slowloris).
VOICEROOM_HANDSHAKE_TIMEOUT_S = env.float("VOICEROOM_HANDSHAKE_TIMEOUT_S", default=10.0)

# uvicorn (realtime.servers.uvicorn protocol): relayed voice for one socket leaves in one write
# per this many milliseconds (0: per event-loop turn). Fewer writes, less CPU per delivery,
# up to this much added latency per frame (docs/benchmarks.md, "Issue 17, round two").
VOICEROOM_VOICE_FLUSH_MS = env.float("VOICEROOM_VOICE_FLUSH_MS", default=0.0)
if not 0.0 <= VOICEROOM_VOICE_FLUSH_MS <= 100.0:
    raise ImproperlyConfigured("VOICEROOM_VOICE_FLUSH_MS must be between 0 and 100.")

# Webhooks (webhooks/, docs/operations.md "Webhooks"). Unset URL: no event is stored.
VOICEROOM_WEBHOOK_URL = env.str("VOICEROOM_WEBHOOK_URL", default="")
# The HMAC-SHA256 key of X-Voiceroom-Signature: required once a URL is set (no default).
VOICEROOM_WEBHOOK_SECRET = env.str("VOICEROOM_WEBHOOK_SECRET", default="")
if VOICEROOM_WEBHOOK_URL and not VOICEROOM_WEBHOOK_SECRET:
    raise ImproperlyConfigured("VOICEROOM_WEBHOOK_URL is set: set VOICEROOM_WEBHOOK_SECRET too.")
# Whether this process's runtime delivers (off: only `manage.py webhooks_worker` does).
VOICEROOM_WEBHOOK_DELIVERY = _on_off("VOICEROOM_WEBHOOK_DELIVERY", default=True)
VOICEROOM_WEBHOOK_TIMEOUT_S = env.float("VOICEROOM_WEBHOOK_TIMEOUT_S", default=10.0)
# Seconds between looks at the outbox when there was nothing to send.
VOICEROOM_WEBHOOK_POLL_S = env.float("VOICEROOM_WEBHOOK_POLL_S", default=1.0)
# Retry delays double from MIN to MAX; an event still refused RETRY_FOR_S after it was
# stored is marked failed (the admin can replay it).
VOICEROOM_WEBHOOK_BACKOFF_MIN_S = env.float("VOICEROOM_WEBHOOK_BACKOFF_MIN_S", default=1.0)
VOICEROOM_WEBHOOK_BACKOFF_MAX_S = env.float("VOICEROOM_WEBHOOK_BACKOFF_MAX_S", default=600.0)
VOICEROOM_WEBHOOK_RETRY_FOR_S = env.float("VOICEROOM_WEBHOOK_RETRY_FOR_S", default=24 * 3600.0)
# Delivered events are deleted after this many days (0: kept).
VOICEROOM_WEBHOOK_KEEP_DAYS = env.int("VOICEROOM_WEBHOOK_KEEP_DAYS", default=7)

# Credentials in URLs (?ticket=, ?resume=) never reach a log line: the filter redacts
# them, and LOGGING_CONFIG puts it on the servers' own handlers and daphne's access log
# too (voiceroom/logfilters.py).
LOGGING_CONFIG = "voiceroom.logfilters.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"credentials": {"()": "voiceroom.logfilters.RedactCredentials"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["credentials"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "INFO"},
    },
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
        "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False
    )
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    # Probes reach nodes over plain HTTP inside the network: never redirect them.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
