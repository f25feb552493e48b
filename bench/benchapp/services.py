"""Services `bench0` … `bench9`: no actions, one default topic; they exist only to be streamed."""

from __future__ import annotations

from streaming.services import Service, register

NAMES = [f"bench{i}" for i in range(10)]

for bench_name in NAMES:
    register(type(f"Bench{bench_name[5:]}Service", (Service,), {"name": bench_name}))
