"""bench.fanout_cost: it measures the relay's real fast path, every delivery of it."""

from __future__ import annotations

import asyncio

from bench import fanout_cost
from realtime.servers import uvicorn


def test_every_delivery_takes_the_fast_path_and_is_flushed():
    before = uvicorn._coalescer
    res = asyncio.run(fanout_cost.measure(sockets=5, frames=300, payload_bytes=120))
    assert res["deliveries"] == res["direct"] == 1500
    assert res["unflushed"] == 0
    assert res["us_per_delivery"] > 0
    assert uvicorn._coalescer is before  # the process's coalescer is put back


def test_the_command_prints_the_cost(capsys):
    assert fanout_cost.main(["--sockets", "3", "--frames", "200"]) == 0
    out = capsys.readouterr().out
    assert "600 deliveries (200 frames to 3 sockets):" in out
    assert "us of CPU per delivery" in out
