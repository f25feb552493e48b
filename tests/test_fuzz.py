"""Fuzzing client frames: whatever a client sends, the server never fails internally and stays usable."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streaming.delivery.worker import get_worker
from tests.streaming_helpers import communicator, make_user, token_for

pytestmark = pytest.mark.django_db(transaction=True)

#: Close codes a frame may legitimately earn: a refused `auth` refresh (4401/4403).
AUTH_CLOSES = {4401, 4403}

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=15,
)
names = st.sampled_from(["widgets", "notifications", "load", "nope", "", "w" * 300]) | values
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["subscribe", "unsubscribe", "request", "ping", "pong", "auth", "x"]) | values},
    optional={
        "id": values,
        "service": names,
        "topic": names,
        "action": st.sampled_from(["list", "get", "nope"]) | values,
        "data": values,
        "token": values,
        "since": st.fixed_dictionaries({"epoch": values, "seq": values}) | values,
    },
)
frames = st.one_of(
    messages.map(lambda m: json.dumps(m, allow_nan=True)),
    values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.text(max_size=300),
    st.binary(max_size=50).map(lambda b: b.decode("latin1")),
    st.integers(min_value=1, max_value=2000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(min_value=1, max_value=6000).map(lambda digits: '{"type":"ping","id":' + "7" * digits + "}"),
)


@pytest.fixture
def fuzz_settings(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.STREAMING = {
        **settings.STREAMING,
        "REDIS_URL": "",
        "MESSAGES_PER_SECOND": 100_000.0,
        "MESSAGES_BURST": 100_000,
        "REQUESTS_PER_SECOND": 100_000.0,
        "REQUESTS_BURST": 100_000,
        "INVALID_MESSAGE_STRIKES": 100_000,
    }


@pytest.fixture
def token(db, fuzz_settings) -> str:
    return token_for(make_user("fuzzer"))


async def _settled(coro) -> None:
    """Run `coro`, then stop this loop's worker and every task it left, so asyncio.run can end."""
    try:
        await coro
    finally:
        await get_worker().close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        if others:
            _, pending = await asyncio.wait(others, timeout=5)
            for task in pending:
                task.print_stack()
            assert not pending, pending


async def _exchange(token: str, batch: list[str]) -> None:
    comm = communicator(token)
    connected, _ = await comm.connect()
    assert connected
    assert json.loads(await comm.receive_from(5))["type"] == "welcome"
    for n, frame in enumerate(batch):
        await comm.send_input({"type": "websocket.receive", "text": frame})
        await comm.send_to(text_data=json.dumps({"type": "ping", "id": f"probe-{n}"}))
        while True:
            output = await comm.receive_output(5)
            if output["type"] == "websocket.close":
                assert output["code"] in AUTH_CLOSES and '"auth"' in frame, (frame, output)
                return
            reply = json.loads(output["text"])
            assert reply.get("code") != "internal_error", (frame, reply)
            if reply == {"type": "pong", "id": f"probe-{n}"}:
                break
    await comm.disconnect()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(frames, min_size=1, max_size=6))
def test_no_frame_causes_an_internal_error(token, batch, caplog):
    caplog.set_level(logging.ERROR)
    caplog.clear()
    asyncio.run(_settled(_exchange(token, batch)))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def _before_auth(frame: str) -> None:
    comm = communicator(None)
    connected, _ = await comm.connect()
    assert connected
    await comm.send_input({"type": "websocket.receive", "text": frame})
    output = await comm.receive_output(5)
    if output["type"] == "websocket.close":  # anything but `auth` before auth, or a refused token
        assert output["code"] in AUTH_CLOSES, (frame, output)
        return
    reply = json.loads(output["text"])
    assert (reply["type"], reply["code"]) == ("error", "bad_request"), (frame, reply)
    await comm.disconnect()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames)
def test_frames_before_auth_are_refused_cleanly(fuzz_settings, db, frame, caplog):
    caplog.set_level(logging.ERROR)
    caplog.clear()
    asyncio.run(_settled(_before_auth(frame)))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
