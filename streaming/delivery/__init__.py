"""Getting events to subscribers: numbering, history, announcements and the per-worker fan-out.

`backend` chooses the one storage backend (`memory_backend` embedded, `redis_backend` in
production); `hub` fans each stream out to this worker's subscribers in order; `publish` is the
API domain code calls; `worker` holds this process's hub, connections and duties.
May import `streaming.wire`, `streaming.server`, `streaming.services` (the registry) and
`streaming.conf`; never the bus, sessions or ops.
"""
