"""ASGI entry point of the naive Channels baseline: one consumer per websocket, no auth."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django  # noqa: E402

django.setup()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from consumers import NaiveSubscriber  # noqa: E402

application = ProtocolTypeRouter({"websocket": NaiveSubscriber.as_asgi()})
