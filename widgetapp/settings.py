"""Django settings for WidgetApp Streaming, configured from the environment."""

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from streaming.delivery import redis_clients

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for the dev default).")
    SECRET_KEY = "dev-only-insecure-key-widgetapp-streaming-do-not-use-in-production"

# The site's public origins (scheme://host[:port], comma-separated): the browser page's OAuth redirect
# URIs (manage.py browser_client), and the defaults of ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS and
# STREAMING_ALLOWED_ORIGINS. Production names its https origin(s); the dev default is the demo's.
PUBLIC_ORIGINS = env_list("PUBLIC_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000" if DEBUG else "")
_PUBLIC_HOSTS = [urlsplit(origin).hostname or "" for origin in PUBLIC_ORIGINS]
# 127.0.0.1 and localhost stay allowed so that probes reach /healthz on a worker's own port.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ",".join(dict.fromkeys(["127.0.0.1", "localhost", *_PUBLIC_HOSTS])))
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", ",".join(PUBLIC_ORIGINS))
# Reverse proxies (addresses or networks) whose X-Forwarded-For/-Proto are believed (widgetapp/proxy.py).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "oauth2_provider",
    "accounts",
    "streaming",
    "widgetapp.widgets",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "widgetapp.urls"
ASGI_APPLICATION = "widgetapp.asgi.application"
AUTH_USER_MODEL = "accounts.User"
# Django's permissions, plus the object permission to view one widget (widgetapp/widgets/permissions.py).
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "widgetapp.widgets.permissions.WidgetPermissionBackend",
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

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

# The embedded default is SQLite; DATABASE_URL switches to PostgreSQL (or any dj-database-url URL).
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several threads of one process write at once (sign-out revokes two tokens in parallel, the
    # session recorder, the admin). Transactions take the write lock when they begin, so a second
    # writer waits up to `timeout` seconds for it instead of failing with "database is locked";
    # WAL lets readers carry on while one writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

# REDIS_URL names one server, a Sentinel-managed primary (redis+sentinel://…) or a Cluster
# (redis+cluster://…); REDIS_SENTINELS="host:port,…" with REDIS_SENTINEL_MASTER builds the Sentinel
# form. channels-redis cannot use a Cluster: the control bus then needs CHANNEL_LAYER_REDIS_URL.
REDIS_URL = os.environ.get("REDIS_URL", "")
if os.environ.get("REDIS_SENTINELS"):
    REDIS_URL = redis_clients.sentinel_url(
        env_list("REDIS_SENTINELS", ""),
        os.environ.get("REDIS_SENTINEL_MASTER", "mymaster"),
        os.environ.get("REDIS_PASSWORD", ""),
    )
CHANNEL_LAYER_REDIS_URL = os.environ.get("CHANNEL_LAYER_REDIS_URL", REDIS_URL)
if CHANNEL_LAYER_REDIS_URL:
    try:
        layer_host = redis_clients.channel_layer_host(CHANNEL_LAYER_REDIS_URL)
    except ValueError as error:
        raise ImproperlyConfigured(str(error)) from error
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [layer_host],
                "prefix": os.environ.get("STREAMING_REDIS_PREFIX", "widgetapp") + ":layer:",
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

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
# The demo page's scripts (widgetapp/ is the project package, not an installed app).
STATICFILES_DIRS = [BASE_DIR / "widgetapp" / "static"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Production hardening; `manage.py check --deploy` passes with DJANGO_DEBUG=0.
SECURE_HTTPS = env_bool("DJANGO_SECURE_HTTPS", default=not DEBUG)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", default=SECURE_HTTPS)
# Probes and metrics answer on a worker's own plain-HTTP port whatever the TLS settings.
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|metrics)$"]
# No SECURE_PROXY_SSL_HEADER: Django would believe X-Forwarded-Proto from anyone. The request's
# scheme is https only when a TRUSTED_PROXIES peer said so (widgetapp/proxy.py sets it).
# Django reads at most this much of a form body into memory; the ASGI layer (streaming/server/
# body_limit.py) refuses any body over STREAMING["MAX_REQUEST_BODY_BYTES"] before Django sees it.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
SECURE_HSTS_SECONDS = 31536000 if SECURE_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HTTPS
SECURE_HSTS_PRELOAD = SECURE_HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response (docs/security.md): scripts, styles and connections only
# from this origin, so a script injected into a page can neither run inline nor send the live page's
# tokens elsewhere. CSP3 browsers match this host's ws:/wss: with 'self'. The consent page adds its
# client's redirect origin to form-action (accounts/views.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# DOT's swappable models, named so that our migrations can point at them.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"

OAUTH2_PROVIDER = {
    # Issuance rules (approved groups, allowed scopes): docs/oauth.md.
    "OAUTH2_VALIDATOR_CLASS": "accounts.oauth_validators.ApprovedGroupsValidator",
    "SCOPES_BACKEND_CLASS": "streaming.scopes.ServiceScopes",
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("OAUTH_ACCESS_TOKEN_SECONDS", "900")),
    "REFRESH_TOKEN_EXPIRE_SECONDS": 14 * 24 * 3600,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "PKCE_REQUIRED": True,
    "ALLOW_URI_WILDCARDS": False,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"] if DEBUG else ["https"],
    # RFC 9700 (OAuth 2.0 Security BCP): every switch DOT offers, enforced.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    # The dev server (DJANGO_DEBUG=1) redirects to http://127.0.0.1; production allows https only.
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": not DEBUG,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
}

# Streaming engine settings; every key and its default is documented in streaming/conf.py.
STREAMING: dict[str, object] = {
    "REDIS_URL": REDIS_URL,
    "REDIS_PREFIX": os.environ.get("STREAMING_REDIS_PREFIX", "widgetapp"),
    # Embedded default: other local processes publish through the running server over this socket.
    "LOCAL_SOCKET": os.environ.get("STREAMING_LOCAL_SOCKET", str(BASE_DIR / "run" / "streaming.sock")),
    "ALLOWED_ORIGINS": env_list("STREAMING_ALLOWED_ORIGINS", ",".join(PUBLIC_ORIGINS)),
    # Who may read /readyz and /metrics (defaults in streaming/conf.py): networks and/or a token.
    **({"OPS_TOKEN": os.environ["STREAMING_OPS_TOKEN"]} if os.environ.get("STREAMING_OPS_TOKEN") else {}),
    **(
        {"OPS_ALLOWED_NETWORKS": env_list("STREAMING_OPS_ALLOWED_NETWORKS", "")}
        if os.environ.get("STREAMING_OPS_ALLOWED_NETWORKS")
        else {}
    ),
    # Limits and timeouts from STREAMING_<KEY> when set (defaults in streaming/conf.py).
    **{
        key: cast(os.environ[f"STREAMING_{key}"])
        for key, cast in {
            "MAX_FRAME_BYTES": int,
            "MAX_REQUEST_BODY_BYTES": int,
            "PUBLISH_PER_SECOND": float,
            "PUBLISH_BURST": int,
            "SERVICE_PUBLISH_PER_SECOND": float,
            "MESSAGES_PER_SECOND": float,
            "MESSAGES_BURST": int,
            "REQUESTS_PER_SECOND": float,
            "REQUESTS_BURST": int,
            "RATE_LIMIT_STRIKES": int,
            "MAX_SUBSCRIPTIONS": int,
            "MAX_CONNECTIONS_PER_USER": int,
            "MAX_CONNECTIONS_PER_WORKER": int,
            "MAX_OUTBOUND_BYTES": int,
            "AUTH_TIMEOUT": float,
            "SILENT_SOCKET_TIMEOUT": float,
            "MAX_PENDING_AUTH_PER_WORKER": int,
            "MAX_PENDING_AUTH_PER_ADDRESS": int,
            "TOKEN_EXPIRY_WARNING": float,
            "TICKET_SECONDS": float,
            "HEARTBEAT_INTERVAL": float,
            "PRESENCE_TTL": float,
            "DRAIN_SECONDS": float,  # make serve passes it; supervisord's stopwaitsecs must exceed it
        }.items()
        if os.environ.get(f"STREAMING_{key}")
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
