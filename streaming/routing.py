"""ASGI routes of the engine: the websocket and the lean publish API."""

from django.urls import path

from streaming.sessions.consumer import StreamConsumer
from streaming.sessions.publish_api import PublishConsumer

websocket_urlpatterns = [
    path("ws/stream/", StreamConsumer.as_asgi()),
]

http_urlpatterns = [
    path("api/streams/<str:service>/events", PublishConsumer.as_asgi()),
]
