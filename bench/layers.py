"""channels_redis core layer vs pub/sub layer, measured on the same Redis.

    python -m bench.layers                          # all three parts, both layers
    python -m bench.layers --parts fanout --rooms 10 --members 20 --rate 5 --duration 15
    python -m bench.layers --parts idle             # (c) only, about 10 s
    python -m bench.layers --own-redis              # a private redis-server (clean stats)

Three parts, each run for `core` (channels_redis.core.RedisChannelLayer) and `pubsub`
(channels_redis.pubsub.RedisPubSubChannelLayer):

(a) fanout: control-event fan-out as the app does it. Two "node" processes; every room
    group `room.{r}` has --members channels, half on each node, each with its own
    receive() loop. Each node sends --rate group_send per second to half of the rooms
    (a small chat-like dict with the send time). Reported: deliveries/s, latency p50/p99
    (send time to the receiving loop), loss, duplicates, node CPU and Redis CPU per
    delivery, Redis commands per group_send (INFO commandstats delta).
(b) dead: a "victim" process adds --members/2 channels per room and is killed with
    SIGKILL (no group_discard). A live process, which holds the other half, then sends
    --rate group_send per second per room for --dead-seconds. The same run without a
    victim is the baseline. Reported per group_send: Redis commands, Redis CPU, live
    process CPU; and what the dead node left in Redis (group members, stored messages,
    their TTLs; pub/sub subscribers).
(c) idle: a channel whose receive() waits --idle seconds, then gets one group_send. Does
    receive() still return it, or did it raise (redis-py 8 TimeoutError, channels_redis
    #422)? Core is run as configured in the app (no socket_timeout: redis-py's default,
    5 s) and with the work-around socket_timeout=10; pub/sub as configured in the app.

Parts (a) and (b) take the machine lock of bench.run (/tmp/voiceroom-bench.lock) so they do
not run beside another benchmark. Every key uses a fresh prefix `vrlayers<hex>` and is
deleted at the end. Results go to bench/results/<UTC timestamp>-layers.json. Every loop
is bounded in time. See docs/benchmarks.md, "Channel layer".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_URL = "redis://127.0.0.1:6379/10"
KINDS = ("core", "pubsub")
# The core layer's receive() blocks in BZPOPMIN for 5 s; redis-py 8 times the read out
# after its default socket_timeout of 5 s. Above 5 s the read always wins.
CORE_SOCKET_TIMEOUT = 10
TEXT = "hello everyone, this is a chat line of ordinary length"


def log(msg: str) -> None:
    print(f"[bench.layers] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------


def make_layer(kind: str, url: str, prefix: str, socket_timeout: float | None = None):
    """A layer as voiceroom/settings.py builds it: hosts=[{"address": url}], a prefix.

    socket_timeout is added to the host only when given (the core layer needs it, see
    CORE_SOCKET_TIMEOUT); None keeps redis-py's default.
    """
    host: dict[str, Any] = {"address": url}
    if socket_timeout is not None:
        host["socket_timeout"] = socket_timeout
    if kind == "core":
        from channels_redis.core import RedisChannelLayer

        return RedisChannelLayer(hosts=[host], prefix=prefix)
    if kind == "pubsub":
        from channels_redis.pubsub import RedisPubSubChannelLayer

        return RedisPubSubChannelLayer(hosts=[host], prefix=prefix)
    raise ValueError(kind)


def bench_layer(kind: str, url: str, prefix: str):
    """The layer used by parts (a) and (b): core with the work-around, pub/sub as shipped."""
    return make_layer(kind, url, prefix, CORE_SOCKET_TIMEOUT if kind == "core" else None)


async def close_layer(layer) -> None:
    """Close connections without deleting keys (a core flush() deletes every key of the
    prefix, including another node's queued messages)."""
    with contextlib.suppress(Exception):
        if hasattr(layer, "close_pools"):
            await asyncio.wait_for(layer.close_pools(), 5)
        else:
            await asyncio.wait_for(layer.flush(), 5)


async def idle_receive(
    layer, idle: float = 7.0, wait_s: float = 3.0, group: str | None = None
) -> dict[str, Any]:
    """Part (c): receive() on a channel that stays idle `idle` s, then one group_send.

    Returns ok (the message arrived), error (what receive() raised, if it did) and when.
    """
    group = group or f"idle-{secrets.token_hex(6)}"
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    started = time.monotonic()
    failed_at: list[float] = []
    task = asyncio.ensure_future(layer.receive(channel))
    task.add_done_callback(lambda _t: failed_at.append(time.monotonic() - started))
    result: dict[str, Any] = {"idle_s": idle, "ok": False, "error": None, "error_after_s": None}
    try:
        await asyncio.wait({task}, timeout=idle)
        if task.done():
            exc = task.exception()
            result["error"] = f"{type(exc).__module__}.{type(exc).__name__}: {exc}" if exc else None
            result["error_after_s"] = round(failed_at[0], 2) if failed_at else None
            if exc is None:
                result["error"] = f"unexpected message before the send: {task.result()!r}"
            return result
        sent = time.time()
        await layer.group_send(group, {"type": "idle.check", "ts": sent})
        try:
            message = await asyncio.wait_for(task, wait_s)
        except TimeoutError:
            result["error"] = f"nothing arrived within {wait_s} s of the send"
            return result
        except Exception as exc:
            result["error"] = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
            return result
        result["ok"] = message.get("ts") == sent
        result["latency_ms"] = round((time.time() - sent) * 1000, 2)
        return result
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(layer.group_discard(group, channel), 3)


# --------------------------------------------------------------------------------------
# Node processes (internal: python -m bench.layers node '<json>')
# --------------------------------------------------------------------------------------


def emit(data: dict) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


class Stats:
    def __init__(self) -> None:
        self.received = 0
        self.window = 0
        self.lat_ms: list[float] = []
        self.dups = 0
        self.recv_errors: Counter[str] = Counter()
        self.sent_window = 0
        self.sent_total = 0
        self.send_errors: Counter[str] = Counter()
        self.max_send_lag_ms = 0.0


async def recv_loop(layer, channel: str, st: Stats) -> None:
    seen: set[tuple[int, int]] = set()
    while True:
        try:
            msg = await layer.receive(channel)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # count it, keep the member alive, do not spin
            st.recv_errors[type(exc).__name__] += 1
            await asyncio.sleep(0.05)
            continue
        now = time.time()
        st.received += 1
        key = (msg["room"], msg["seq"])
        if key in seen:
            st.dups += 1
            continue
        seen.add(key)
        if msg["w"]:
            st.window += 1
            st.lat_ms.append(round((now - msg["ts"]) * 1000, 3))


async def send_room(layer, room: int, cfg: dict, t0: float, st: Stats) -> None:
    rate, rooms = cfg["rate"], cfg["rooms"]
    w0 = t0 + cfg["warmup"]
    w1 = w0 + cfg["duration"]
    period = 1.0 / rate
    offset = period * room / rooms  # spread the rooms over the period
    n = 0
    while True:
        due = t0 + offset + n * period
        if due >= w1:
            return
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.time()
        st.max_send_lag_ms = max(st.max_send_lag_ms, (now - due) * 1000)
        in_window = w0 <= due < w1
        msg = {"type": "chat", "room": room, "seq": n, "ts": now, "w": in_window,
               "user_id": 1000 + room, "text": TEXT}  # fmt: skip
        try:
            await layer.group_send(f"room.{room}", msg)
            st.sent_total += 1
            st.sent_window += in_window
        except Exception as exc:
            st.send_errors[type(exc).__name__] += 1
        n += 1


async def node_main(cfg: dict) -> None:
    """Roles: "fanout" (members + sender), "live" (members + sender), "victim" (members)."""
    layer = bench_layer(cfg["kind"], cfg["url"], cfg["prefix"])
    nodes, node = cfg["nodes"], cfg["node"]
    channels: list[str] = []
    for room in range(cfg["rooms"]):
        for i in range(cfg["members"]):
            if i % nodes != node:
                continue
            ch = await layer.new_channel()
            await layer.group_add(f"room.{room}", ch)
            channels.append(ch)
    st = Stats()
    receivers = [asyncio.ensure_future(recv_loop(layer, ch, st)) for ch in channels]
    ready = {"ready": True, "pid": os.getpid(), "channels": len(channels)}
    if cfg["kind"] == "core":
        ready["client_prefix"] = layer.client_prefix
    emit(ready)
    loop = asyncio.get_running_loop()
    if cfg["role"] == "victim":
        # Waits to be killed; bounded all the same.
        await asyncio.sleep(cfg.get("max_life", 120))
        return
    line = await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), 120)
    t0 = float(json.loads(line)["t0"])
    senders = [
        asyncio.ensure_future(send_room(layer, room, cfg, t0, st))
        for room in range(cfg["rooms"])
        if room % cfg["sender_nodes"] == cfg["sender_node"]
    ]
    end = t0 + cfg["warmup"] + cfg["duration"] + cfg["drain"]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*senders), end - time.time() + 5)
    await asyncio.sleep(max(0.0, end - time.time()))
    for t in receivers + senders:
        t.cancel()
    await asyncio.gather(*receivers, *senders, return_exceptions=True)
    emit(
        {
            "received": st.received,
            "window": st.window,
            "dups": st.dups,
            "lat_ms": st.lat_ms,
            "recv_errors": dict(st.recv_errors),
            "sent_window": st.sent_window,
            "sent_total": st.sent_total,
            "send_errors": dict(st.send_errors),
            "max_send_lag_ms": round(st.max_send_lag_ms, 2),
        }
    )
    await close_layer(layer)


def run_node(cfg_json: str) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(node_main(json.loads(cfg_json)))


class Node:
    """A node subprocess and a thread that reads its JSON lines."""

    def __init__(self, cfg: dict) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.layers", "node", json.dumps(cfg)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read(self, timeout: float) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"node {self.proc.pid} said nothing for {timeout:.0f} s")
        if line is None:
            raise RuntimeError(f"node {self.proc.pid} exited ({self.proc.wait()})")
        return json.loads(line)

    def go(self, t0: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"t0": t0}) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# --------------------------------------------------------------------------------------
# Redis observation
# --------------------------------------------------------------------------------------


class RedisProbe:
    def __init__(self, url: str) -> None:
        import redis

        self.r = redis.Redis.from_url(url, socket_timeout=10)
        info = self.r.info("server")
        self.version = info.get("redis_version")
        self.pid = int(info["process_id"])
        try:
            self.proc: psutil.Process | None = psutil.Process(self.pid)
        except psutil.Error:
            self.proc = None

    def cpu(self) -> float:
        """Redis's own CPU seconds: INFO cpu (getrusage, microseconds), not psutil's 10 ms
        ticks, which are too coarse for a few hundred commands."""
        with contextlib.suppress(Exception):
            info = self.r.info("cpu")
            return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        if self.proc is None:
            return float("nan")
        t = self.proc.cpu_times()
        return t.user + t.system

    def commandstats(self) -> dict[str, int]:
        return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in
                self.r.info("commandstats").items()}  # fmt: skip

    def keys(self, prefix: str) -> list[bytes]:
        out = []
        for n, key in enumerate(self.r.scan_iter(match=f"{prefix}*", count=1000)):
            out.append(key)
            if n > 200_000:
                break
        return out

    def cleanup(self, prefix: str) -> int:
        keys = self.keys(prefix)
        for i in range(0, len(keys), 1000):
            self.r.delete(*keys[i : i + 1000])
        return len(keys)


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    d = {k: v - before.get(k, 0) for k, v in after.items()}
    return {k: v for k, v in sorted(d.items(), key=lambda kv: -kv[1]) if v > 0}


def sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


# --------------------------------------------------------------------------------------
# (a) fan-out
# --------------------------------------------------------------------------------------


def run_fanout(kind: str, args, probe: RedisProbe, prefix: str) -> dict:
    nodes = []
    base = {"kind": kind, "url": args.redis, "prefix": prefix, "rooms": args.rooms,
            "members": args.members, "rate": args.rate, "warmup": args.warmup,
            "duration": args.duration, "drain": args.drain, "nodes": args.nodes,
            "sender_nodes": args.nodes}  # fmt: skip
    try:
        for i in range(args.nodes):
            nodes.append(Node({**base, "role": "fanout", "node": i, "sender_node": i}))
        for n in nodes:
            n.read(120)
        t0 = time.time() + 0.5
        for n in nodes:
            n.go(t0)
        pids = [n.proc.pid for n in nodes]
        w0, w1 = t0 + args.warmup, t0 + args.warmup + args.duration
        sleep_until(w0)
        c0, r0, s0 = cpu_of(pids), probe.cpu(), probe.commandstats()
        sleep_until(w1)
        c1, r1, s1 = cpu_of(pids), probe.cpu(), probe.commandstats()
        results = [n.read(args.drain + 60) for n in nodes]
    finally:
        for n in nodes:
            n.stop()
        probe.cleanup(prefix)
    sent = sum(r["sent_window"] for r in results)
    expected = sent * args.members
    delivered = sum(r["window"] for r in results)
    lat = [x for r in results for x in r["lat_ms"]]
    calls = delta(s1, s0)
    per_s = delivered / args.duration
    return {
        "part": "fanout", "layer": kind, "rooms": args.rooms, "members": args.members,
        "rate": args.rate, "duration": args.duration, "nodes": args.nodes,
        "group_sends": sent, "expected": expected, "delivered": delivered,
        "deliveries_per_s": round(per_s, 1),
        "loss_pct": round(100 * (1 - delivered / expected), 3) if expected else None,
        "dups": sum(r["dups"] for r in results),
        "p50_ms": round(percentile(lat, 50), 2), "p99_ms": round(percentile(lat, 99), 2),
        "max_ms": round(max(lat), 2) if lat else None,
        "node_cpu_us_per_delivery": round((c1 - c0) / delivered * 1e6, 1) if delivered else None,
        "node_cpu_pct": round(100 * (c1 - c0) / args.duration, 1),
        "redis_cpu_us_per_delivery": round((r1 - r0) / delivered * 1e6, 2) if delivered else None,
        "redis_cpu_pct": round(100 * (r1 - r0) / args.duration, 1),
        "redis_calls_per_group_send": round(sum(calls.values()) / sent, 1) if sent else None,
        "redis_calls": calls,
        "recv_errors": [r["recv_errors"] for r in results],
        "send_errors": [r["send_errors"] for r in results],
        "max_send_lag_ms": max(r["max_send_lag_ms"] for r in results),
    }  # fmt: skip


# --------------------------------------------------------------------------------------
# (b) dead node
# --------------------------------------------------------------------------------------


def snapshot(kind: str, probe: RedisProbe, prefix: str, rooms: int, dead: str | None) -> dict:
    """What the layer keeps in Redis under this prefix."""
    r = probe.r
    if kind == "pubsub":
        chans = [f"{prefix}__group__room.{i}" for i in range(rooms)]
        numsub = dict(r.pubsub_numsub(*chans))
        return {
            "keys": len(probe.keys(prefix)),
            "group_subscribers": sum(int(v) for v in numsub.values()),
            "subscribed_channels": len(r.pubsub_channels(f"{prefix}*")),
        }
    snap: dict[str, Any] = {"keys": 0, "group_members": 0, "dead_members": 0,
                            "group_ttl_s": None, "channel_keys": 0, "stored_messages": 0,
                            "dead_stored_messages": 0, "dead_key_ttl_s": None}  # fmt: skip
    for key in probe.keys(prefix):
        name = key.decode()
        snap["keys"] += 1
        if ":group:" in name:
            members = [m.decode() for m in r.zrange(key, 0, -1)]
            snap["group_members"] += len(members)
            if dead:
                snap["dead_members"] += sum(dead in m for m in members)
            snap["group_ttl_s"] = r.ttl(key)
        else:
            n = r.zcard(key)
            snap["channel_keys"] += 1
            snap["stored_messages"] += n
            if dead and dead in name:
                snap["dead_stored_messages"] += n
                snap["dead_key_ttl_s"] = r.ttl(key)
    return snap


def run_dead(kind: str, args, probe: RedisProbe, prefix: str, with_victim: bool) -> dict:
    """Live node (half of every room) sends; with_victim: the other half was SIGKILLed."""
    base = {"kind": kind, "url": args.redis, "prefix": prefix, "rooms": args.rooms,
            "members": args.members, "rate": args.rate, "warmup": 0.0,
            "duration": args.dead_seconds, "drain": 1.0, "nodes": 2,
            "sender_nodes": 1, "sender_node": 0}  # fmt: skip
    live = victim = None
    dead_id = None
    out: dict[str, Any] = {"part": "dead", "layer": kind, "victim": with_victim,
                           "rooms": args.rooms, "members": args.members, "rate": args.rate,
                           "seconds": args.dead_seconds}  # fmt: skip
    try:
        live = Node({**base, "role": "live", "node": 0})
        if with_victim:
            victim = Node({**base, "role": "victim", "node": 1})
            ready = victim.read(120)
            dead_id = ready.get("client_prefix")
        live.read(120)
        if victim is not None:
            out["before_kill"] = snapshot(kind, probe, prefix, args.rooms, dead_id)
            os.kill(victim.proc.pid, signal.SIGKILL)
            victim.proc.wait(10)
            time.sleep(0.5)  # let Redis notice the closed connection
        out["before_sends"] = snapshot(kind, probe, prefix, args.rooms, dead_id)
        t0 = time.time() + 0.3
        live.go(t0)
        sleep_until(t0)
        c0, r0, s0 = cpu_of([live.proc.pid]), probe.cpu(), probe.commandstats()
        sleep_until(t0 + args.dead_seconds)
        c1, r1, s1 = cpu_of([live.proc.pid]), probe.cpu(), probe.commandstats()
        # The live node is still up (it drains for 1 s before it reports).
        out["after_sends"] = snapshot(kind, probe, prefix, args.rooms, dead_id)
        res = live.read(60)
    finally:
        for n in (live, victim):
            if n is not None:
                n.stop()
        probe.cleanup(prefix)
    sent = res["sent_window"]
    calls = delta(s1, s0)
    live_expected = sent * (args.members - args.members // 2)
    out.update(
        {
            "group_sends": sent,
            "live_delivered": res["window"],
            "live_loss_pct": round(100 * (1 - res["window"] / live_expected), 3)
            if live_expected
            else None,
            "redis_calls_per_group_send": round(sum(calls.values()) / sent, 2) if sent else None,
            "redis_calls": calls,
            "writes_per_group_send": round(
                sum(calls.get(c, 0) for c in ("zadd", "expire", "publish")) / sent, 2
            )
            if sent
            else None,
            "redis_cpu_us_per_group_send": round((r1 - r0) / sent * 1e6, 1) if sent else None,
            "live_cpu_us_per_group_send": round((c1 - c0) / sent * 1e6, 1) if sent else None,
            "recv_errors": res["recv_errors"],
            "send_errors": res["send_errors"],
        }
    )
    return out


# --------------------------------------------------------------------------------------
# (c) idle receive
# --------------------------------------------------------------------------------------

IDLE_VARIANTS = (
    # (label, kind, socket_timeout): as voiceroom/settings.py would configure it, and the
    # core layer with the work-around.
    ("core (as configured)", "core", None),
    (f"core, socket_timeout={CORE_SOCKET_TIMEOUT}", "core", CORE_SOCKET_TIMEOUT),
    ("pubsub (as configured)", "pubsub", None),
)


async def run_idle(args, prefix: str) -> list[dict]:
    async def one(i: int, label: str, kind: str, socket_timeout: float | None) -> dict:
        layer = make_layer(kind, args.redis, f"{prefix}i{i}", socket_timeout)
        try:
            res = await idle_receive(layer, idle=args.idle)
        finally:
            await close_layer(layer)
        return {"part": "idle", "variant": label, "layer": kind, **res}

    return await asyncio.gather(*(one(i, *v) for i, v in enumerate(IDLE_VARIANTS)))


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def own_redis():
    """A private redis-server on 127.0.0.1 (no persistence) so its stats are ours alone."""
    binary = shutil.which("redis-server")
    if not binary:
        raise SystemExit("redis-server not found; drop --own-redis")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="vrlayers-redis-")
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
         "no", "--dir", workdir, "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/10"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def print_tables(results: list[dict]) -> None:
    fan = [r for r in results if r["part"] == "fanout"]
    if fan:
        print("\n(a) fan-out\n")
        cols = ["layer", "rooms", "members", "rate", "deliveries_per_s", "loss_pct", "dups",
                "p50_ms", "p99_ms", "max_ms", "node_cpu_us_per_delivery",
                "redis_cpu_us_per_delivery", "redis_calls_per_group_send"]  # fmt: skip
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for r in fan:
            print("| " + " | ".join(fmt(r[c]) for c in cols) + " |")
    dead = [r for r in results if r["part"] == "dead"]
    if dead:
        print("\n(b) dead node\n")
        cols = ["layer", "victim", "group_sends", "live_loss_pct", "redis_calls_per_group_send",
                "writes_per_group_send", "redis_cpu_us_per_group_send",
                "live_cpu_us_per_group_send"]  # fmt: skip
        print("| " + " | ".join(cols) + " | left in Redis after the sends |")
        print("|" + "---|" * (len(cols) + 1))
        for r in dead:
            print("| " + " | ".join(fmt(r[c]) for c in cols) + f" | {r['after_sends']} |")
    idle = [r for r in results if r["part"] == "idle"]
    if idle:
        print("\n(c) idle receive\n")
        print("| variant | idle s | message arrived | error | error after s |")
        print("|---|---|---|---|---|")
        for r in idle:
            print(f"| {r['variant']} | {r['idle_s']} | {r['ok']} | {fmt(r['error'])} "
                  f"| {fmt(r['error_after_s'])} |")  # fmt: skip


def measure(args) -> list[dict]:
    probe = RedisProbe(args.redis)
    log(f"Redis {probe.version} pid {probe.pid} at {args.redis}; prefix {args.prefix}*")
    results: list[dict] = []
    try:
        if "idle" in args.parts:
            log(f"(c) idle receive, {args.idle} s")
            results += asyncio.run(run_idle(args, f"{args.prefix}idle"))
        for kind in args.layers:
            if "fanout" in args.parts:
                log(f"(a) fan-out, {kind}")
                results.append(run_fanout(kind, args, probe, f"{args.prefix}{kind}f"))
            if "dead" in args.parts:
                for victim in (False, True):
                    log(f"(b) dead node, {kind}, victim={victim}")
                    results.append(
                        run_dead(kind, args, probe, f"{args.prefix}{kind}d{int(victim)}", victim)
                    )
    finally:
        left = probe.cleanup(args.prefix)
        if left:
            log(f"deleted {left} leftover keys")
    return results


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["node"]:
        run_node(argv[1])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--redis", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    p.add_argument(
        "--own-redis",
        action="store_true",
        help="start a private redis-server on a free 127.0.0.1 port",
    )
    p.add_argument("--layers", default="core,pubsub")
    p.add_argument("--parts", default="fanout,dead,idle")
    p.add_argument("--rooms", type=int, default=10)
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--rate", type=float, default=5.0, help="group_send per second per room")
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--drain", type=float, default=2.0)
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--dead-seconds", type=float, default=10.0)
    p.add_argument("--idle", type=float, default=7.0)
    p.add_argument("--json", default=None, help="default bench/results/<UTC>-layers.json")
    p.add_argument("--lock-timeout", type=float, default=1800.0)
    args = p.parse_args(argv)  # fmt: skip
    args.layers = [k for k in args.layers.split(",") if k]
    args.parts = {x for x in args.parts.split(",") if x}
    if bad := [k for k in args.layers if k not in KINDS]:
        raise SystemExit(f"unknown layer(s) {bad}; choose from {KINDS}")
    args.prefix = f"vrlayers{secrets.token_hex(4)}"
    if urlsplit(args.redis).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("bench.layers only talks to Redis on 127.0.0.1")

    from bench.run import machine_lock

    lock = (
        machine_lock(args.lock_timeout)
        if args.parts & {"fanout", "dead"}
        else contextlib.nullcontext()
    )
    started = datetime.now(UTC)
    server = own_redis() if args.own_redis else contextlib.nullcontext()
    with lock, server as url:
        if url:
            args.redis = url
        results = measure(args)
    print_tables(results)
    out = args.json or str(RESULTS / f"{started:%Y%m%dT%H%M%SZ}-layers.json")
    from bench.report import cpu_model, write_json

    params = {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()}
    write_json(out, {"started": started.isoformat(), "nproc": os.cpu_count(),
                     "cpu": cpu_model(), "params": params, "results": results})  # fmt: skip
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
