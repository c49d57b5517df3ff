"""The load generator's open loop signs its notifications before the phase, not inside the
timed operations (nothing is timed here: the phase is a fraction of a second)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from bench.load import Runner, Spec


@dataclass
class _Note:
    body: bytes
    headers: dict[str, str]


@dataclass
class _Provider:
    """The parts of a ProviderBench the runner uses; counts the notifications it signs."""

    name: str = "stub"
    signed: list[int] = field(default_factory=list)

    def seed_number(self, index: int) -> int:
        return index

    def notification(self, number: int) -> _Note:
        self.signed.append(number)
        return _Note(f"n{number}".encode(), {"Content-Type": "application/json"})

    def acked(self, status: int, content: bytes) -> bool:
        return status == 200


@dataclass
class _Response:
    status_code: int = 200
    content: bytes = b"ok"
    text: str = "ok"


@dataclass
class _Client:
    """Records each post's body and how many notifications had been signed by then."""

    provider: _Provider
    posts: list[tuple[bytes, int]] = field(default_factory=list)

    async def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> _Response:
        self.posts.append((content, len(self.provider.signed)))
        return _Response()


def _runner(mode: str, **kw: Any) -> tuple[Runner, _Provider, _Client]:
    provider = _Provider()
    client = _Client(provider)
    spec = Spec("notification", "minigate", ["http://x"], ["k"], mode=mode, pool_start=100,
                pool_size=1000, **kw)
    return Runner(spec, provider, client, None), provider, client  # type: ignore[arg-type]


def test_open_loop_notifications_are_signed_before_the_phase() -> None:
    runner, provider, client = _runner("open", rate=200.0, duration=0.1)
    runner.prepare()
    assert provider.signed == list(range(100, 120))  # rate × duration, in pool order
    asyncio.run(runner.open())
    assert provider.signed == list(range(100, 120))  # none signed while timed
    assert [body for body, _ in client.posts] == [f"n{i}".encode() for i in range(100, 120)]
    assert {signed_by_then for _, signed_by_then in client.posts} == {20}
    assert len(runner.latencies) == 20 and runner.errors == 0
    assert runner.notified[:3] == [100, 101, 102]


def test_closed_loop_signs_as_it_goes_and_past_the_prepared_ones_too() -> None:
    runner, provider, client = _runner("closed", concurrency=1, duration=0.05)
    runner.prepare()
    assert provider.signed == []  # a closed loop offers what it can sign
    runner, provider, client = _runner("open", rate=100.0, duration=0.05)
    runner.prepare()
    assert len(provider.signed) == 5
    for _ in range(7):  # more than prepared (a phase never asks, but it must not fail)
        asyncio.run(runner.op(0))
    assert provider.signed == list(range(100, 107))
    assert [body for body, _ in client.posts][-2:] == [b"n105", b"n106"]
