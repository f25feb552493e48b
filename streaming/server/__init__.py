"""Everything that knows the ASGI server underneath: daphne's Twisted reactor and transports.

`writer` puts frames on a websocket (straight onto daphne's TCP transport when it can), `daphne`
holds the server tweaks (frame-size refusals, close grace, stop listening, the SIGTERM hook),
`lean` releases what the server layers keep of a websocket's handshake once it is open.
May import `streaming.wire` and `streaming.conf`; nothing else of the engine.
"""
