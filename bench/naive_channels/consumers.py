"""The naive design: each connection joins a channel-layer group per stream and forwards group messages."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from groups import group_name

EPOCH = "e"


class NaiveSubscriber(AsyncJsonWebsocketConsumer):
    """`group_add` on subscribe; every `group_send` reaches this consumer, which re-encodes and sends."""

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "subscribe":
            return
        service, topic = str(content.get("service", "bench")), str(content.get("topic") or "all")
        group = group_name(service, topic)
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups.append(group)
        reply = {"type": "subscribed", "service": service, "topic": topic, "epoch": EPOCH, "seq": 0}
        await self.send_json({**reply, "recovered": False})

    async def stream_event(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])
