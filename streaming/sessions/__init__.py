"""One client's time on the server: handshake, authentication, admission, the consumer, limits,
the control operations that act on open sessions, and the hand-over of a draining worker.

`consumer` decodes, routes and replies; `lifecycle` opens and closes sessions (admission, audit,
slots, resume memory); `connection` is one socket's state; `auth` and `access` decide who may do
what; `limits` and `ratelimit` hold the live limits; `operations` are the control-bus handlers.
May import `streaming.bus`, `streaming.delivery`, `streaming.server`, `streaming.wire`,
`streaming.services` and `accounts`; never `streaming.ops`.
"""
