"""What daphne, autobahn and Twisted keep of a websocket's handshake, released once it is open.

An idle connection should cost its session and little else. After the upgrade, each daphne
websocket still holds: Twisted's HTTP channel (registered as the transport's producer, with its
line buffer and the upgrade request's headers and body), autobahn's parsed and raw handshake, the
request headers daphne copied for the ASGI scope, and some forty settings autobahn copies from its
factory into every protocol's `__dict__`. None of it is read again (the channel's producer hooks
do nothing while it is handling the upgraded request), so it is dropped here.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from twisted.web.http import HTTPChannel

#: autobahn's record of the opening handshake; only the handshake reads it.
HANDSHAKE_ATTRS = (
    "http_request_data",
    "http_headers",
    "http_status_line",
    "http_request_uri",
    "http_request_path",
    "http_request_params",
    "http_response_data",
    "websocket_protocols",
    "websocket_extensions",
)
NO_HEADERS: MappingProxyType[str, str] = MappingProxyType({})


def release_handshake(writer: Any, scope: dict[str, Any]) -> None:
    """Drop the handshake leftovers of an open websocket: its request headers, read only at connect,
    and (under daphne) what the server layers keep of the upgrade."""
    headers = scope.get("headers")
    if isinstance(headers, list):
        headers.clear()  # cleared in place: middleware copies of the scope share the list
    protocol = getattr(writer, "protocol", None)
    transport = getattr(protocol, "transport", None)
    if transport is None or not hasattr(protocol, "CONFIG_ATTRS"):
        return
    if isinstance(getattr(transport, "producer", None), HTTPChannel):
        transport.unregisterProducer()
    for name in HANDSHAKE_ATTRS:
        if name in protocol.__dict__:
            setattr(protocol, name, None)
    request = getattr(protocol, "request", None)
    if request is not None:  # daphne logs request.path at close; the rest is the handshake's
        request.headers = NO_HEADERS
        request.params = NO_HEADERS
    headers = getattr(protocol, "clean_headers", None)
    if isinstance(headers, list):
        headers.clear()  # daphne's own scope's `headers`
    _share_factory_settings(protocol)


def _share_factory_settings(protocol: Any) -> None:
    """Keep autobahn's factory settings on the protocol class, once, instead of in every instance.

    autobahn copies each setting only when the protocol does not have it yet, so later connections
    find them on the class; one that was set on a single connection (e.g. its close grace) stays.
    """
    cls, factory, attrs = type(protocol), protocol.factory, protocol.__dict__
    for name in protocol.CONFIG_ATTRS:
        value = getattr(factory, name)
        if callable(value):  # a function on the class would become a method of each protocol
            continue
        if name not in cls.__dict__:
            setattr(cls, name, value)
        if name in attrs and attrs[name] is cls.__dict__[name]:
            del attrs[name]
    protocol.__dict__ = dict(attrs)  # a dict does not shrink when keys go; a copy is sized to fit
