"""ASGI entry point: the publish API and Django for HTTP, the streaming consumer for websockets."""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "widgetapp.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import re_path  # noqa: E402

from streaming.delivery.worker import start_with_server  # noqa: E402
from streaming.routing import http_urlpatterns, websocket_urlpatterns  # noqa: E402
from streaming.server.body_limit import BodyLimit, refuse_large_bodies  # noqa: E402
from widgetapp.proxy import TrustedProxyHeaders  # noqa: E402

if settings.DEBUG:
    # Daphne serves no static files itself: in development Django serves /static/ (the demo page).
    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

application = TrustedProxyHeaders(
    BodyLimit(
        ProtocolTypeRouter(
            {
                "http": URLRouter([*http_urlpatterns, re_path(r"", django_asgi_app)]),
                "websocket": URLRouter(websocket_urlpatterns),
            }
        )
    )
)
refuse_large_bodies()
start_with_server()
