"""Settings of the naive Channels baseline: no database, channels-redis `RedisChannelLayer` defaults."""

import os

SECRET_KEY = "bench-only-naive-channels"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["daphne", "channels"]
ASGI_APPLICATION = "asgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# The naive design keeps channels-redis's defaults (capacity 100, expiry 60 s); only the prefix is unique.
# NAIVE_LAYER=pubsub measures the same design on RedisPubSubChannelLayer instead.
LAYER_BACKENDS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": LAYER_BACKENDS[os.environ.get("NAIVE_LAYER", "core")],
        "CONFIG": {
            "hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")],
            "prefix": os.environ.get("NAIVE_REDIS_PREFIX", "bench-naive") + ":",
        },
    }
}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
