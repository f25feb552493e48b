"""The websocket consumer: decode, route, reply."""

from channels.generic.websocket import AsyncWebsocketConsumer

from streaming.protocol import CLOSE_UNAUTHENTICATED


class StreamConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_UNAUTHENTICATED)
