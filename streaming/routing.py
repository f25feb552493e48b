"""ASGI routes of the engine: the websocket, the lean publish API and the SSE fallback."""

from django.urls import path

from streaming.sessions.consumer import StreamConsumer
from streaming.sessions.publish_api import PublishConsumer
from streaming.sessions.sse import EventStreamConsumer, TicketConsumer

websocket_urlpatterns = [
    path("ws/stream/", StreamConsumer.as_asgi()),
]

http_urlpatterns = [
    path("api/streams/<str:service>/events", PublishConsumer.as_asgi()),
    path("sse/ticket/", TicketConsumer.as_asgi()),
    path("sse/stream/", EventStreamConsumer.as_asgi()),
]
