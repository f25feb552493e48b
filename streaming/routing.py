"""Websocket routes."""

from django.urls import path

from streaming.consumers import StreamConsumer

websocket_urlpatterns = [
    path("ws/stream/", StreamConsumer.as_asgi()),
]
