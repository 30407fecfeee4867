"""The run: set-up through REST, sockets, the timeline (warm-up, measured window, grace),
the probes around it, and teardown. `run(cfg)` returns the result dict."""

from __future__ import annotations

import asyncio
import gc
import secrets
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit

import psutil

from bench import soak
from bench.client import OPEN, BenchClient, Speaker, Stats
from bench.config import LoadConfig
from bench.probes import Probe, drain_stalled, sample_cpu, sample_series, watch_stalled
from bench.report import build_report, write_json
from bench.rest import BenchUser, Rest, RestError, load_user_cache, register, save_user_cache
from bench.wsclient import HandshakeError, perf_ns


def log(cfg: LoadConfig, msg: str) -> None:
    if cfg.progress:
        print(f"[loadgen{' ' + cfg.label if cfg.label else ''}] {msg}", file=sys.stderr, flush=True)


class Node:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.host_header = f"{self.host}:{self.port}"
        self.rest = Rest(f"http://{self.host}:{self.port}")


def socket_target(ws_url: str, node: Node) -> tuple[str, int, str, str]:
    """(host, port, Host header, path) to open a room's socket where `ws_url` says: an
    absolute ws:// URL names the room's home node (placement); a path is on `node`, the
    node that answered the join."""
    parts = urlsplit(ws_url)
    if parts.scheme in ("ws", "wss"):
        if parts.scheme == "wss":
            raise ValueError("the load generator speaks plain ws:// only")
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 80
        return host, port, parts.netloc, parts.path
    return node.host, node.port, node.host_header, ws_url


async def setup_voiceroom(cfg, nodes, loop, pool) -> tuple[list[BenchUser], list[int]]:
    """Users (reused from the cache when given), then one fresh room per room index."""
    total = cfg.rooms * cfg.members
    users = load_user_cache(cfg.user_cache)
    if users:
        try:
            await loop.run_in_executor(
                pool, lambda: nodes[0].rest.call("GET", "/api/auth/me", token=users[0].token)
            )
        except (RestError, OSError):
            users = []
    tag = secrets.token_hex(3)
    missing = total - len(users)
    if missing > 0:
        log(cfg, f"registering {missing} users (password hashing: slow on one core) ...")
        sem = asyncio.Semaphore(cfg.setup_concurrency)
        base = len(users)

        async def reg(n: int) -> BenchUser:
            async with sem:
                node = nodes[n % len(nodes)]
                return await loop.run_in_executor(
                    pool, register, node.rest, f"bench-{tag}-{base + n}"
                )

        users += await asyncio.gather(*(reg(n) for n in range(missing)))
        save_user_cache(cfg.user_cache, users)
    users = users[:total]
    owners = [users[r * cfg.members] for r in range(cfg.rooms)]
    capacity = max(2, min(500, cfg.members))
    sem = asyncio.Semaphore(cfg.setup_concurrency)

    async def create(r: int) -> int:
        body = {
            "name": f"bench {cfg.label or tag} {r}",
            "topic": "benchmark",
            "capacity": capacity,
            "seat_count": 0,
        }
        async with sem:
            node = nodes[r % len(nodes)]
            ans = await loop.run_in_executor(
                pool, node.rest.call, "POST", "/api/rooms/", body, owners[r].token
            )
        return int(ans["id"])

    room_ids = list(await asyncio.gather(*(create(r) for r in range(cfg.rooms))))
    for r in range(cfg.record_rooms):  # before the members connect: they start recording
        node = nodes[r % len(nodes)]
        await loop.run_in_executor(
            pool,
            node.rest.call,
            "POST",
            f"/api/rooms/{room_ids[r]}/recording",
            {"active": True},
            owners[r].token,
        )
    if cfg.record_rooms:
        log(cfg, f"recording in {cfg.record_rooms} room(s)")
    return users, room_ids


async def connect_members(
    cfg: LoadConfig,
    nodes: list[Node],
    loop,
    pool,
    stats: Stats,
    conns: list[BenchClient | None],
    errors: list[str],
    indices,
    users: list[BenchUser],
    room_ids: list[int],
    landed: dict[int, tuple[str, int]] | None = None,
) -> None:
    """Connect members `indices` (join through REST first for voiceroom) into `conns`.

    A member is connected once its socket is open and, for voiceroom, has read its
    `welcome`. Failures are appended to `errors`; where each one landed (host, port) to
    `landed`; the whole call is bounded in time.
    """
    indices = list(indices)
    if landed is None:
        landed = {}
    # Joins write to the database: as gently as the user set-up.
    sem = asyncio.Semaphore(
        cfg.connect_concurrency if cfg.target == "bare" else cfg.setup_concurrency
    )

    async def connect(i: int) -> None:
        room = i // cfg.members
        node = nodes[i % len(nodes)]
        host, port, host_header = node.host, node.port, node.host_header
        async with sem:
            try:
                if cfg.target == "bare":
                    path = f"/room/{room}?uid={i + 1}"
                else:
                    ans = await loop.run_in_executor(
                        pool,
                        node.rest.call,
                        "POST",
                        f"/api/rooms/{room_ids[room]}/join",
                        {},
                        users[i].token,
                    )
                    # Follow ws_url: with placement it names the room's home node.
                    ws_url = ans.get("ws_url") or f"/ws/rooms/{room_ids[room]}/"
                    host, port, host_header, ws_path = socket_target(ws_url, node)
                    path = f"{ws_path}?ticket={quote(ans['ticket'], safe='')}"
                _, proto = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: BenchClient(
                            host_header,
                            path,
                            stats,
                            i,
                            room,
                            cfg.frame_bytes,
                            cfg.target == "voiceroom",
                        ),
                        host,
                        port,
                    ),
                    10,
                )
                await asyncio.wait_for(proto.ready, 15)
                conns[i] = proto
                landed[i] = (host, port)
            except (
                OSError,
                RestError,
                HandshakeError,
                TimeoutError,
                KeyError,
                ValueError,
            ) as exc:
                errors.append(f"member {i}: {type(exc).__name__}: {exc}")

    await asyncio.wait_for(asyncio.gather(*(connect(i) for i in indices)), 120 + 0.5 * len(indices))


async def run_async(cfg: LoadConfig) -> dict:
    cfg.validate()
    loop = asyncio.get_running_loop()
    nodes = [Node(u) for u in cfg.urls]
    stats = Stats(cfg.rooms)
    total = cfg.rooms * cfg.members
    stats.room_of = [i // cfg.members for i in range(total)]
    me = psutil.Process()
    t_setup = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=max(cfg.setup_concurrency, 4))
    conns: list[BenchClient | None] = [None] * total
    errors: list[str] = []
    result: dict[str, Any] = {}
    try:
        users: list[BenchUser] = []
        room_ids = list(range(cfg.rooms))
        if cfg.target == "voiceroom":
            users, room_ids = await setup_voiceroom(cfg, nodes, loop, pool)
        log(cfg, f"connecting {total} sockets to {len(nodes)} node(s) ...")
        landed: dict[int, tuple[str, int]] = {}
        await connect_members(
            cfg, nodes, loop, pool, stats, conns, errors, range(total), users, room_ids, landed
        )
        connected = sum(1 for c in conns if c is not None)
        per_room = [0] * cfg.rooms
        for c in conns:
            if c is not None:
                per_room[c.room] += 1
        if errors:
            log(cfg, f"WARNING: {len(errors)} connection(s) failed; first: {errors[0]}")
        if connected < 2:
            raise RuntimeError(f"only {connected} sockets connected: {errors[:3]}")
        setup_s = time.monotonic() - t_setup
        log(cfg, f"{connected}/{total} connected in {setup_s:.1f} s; load starts")
        await asyncio.sleep(0.3)  # let join events settle
        # The collector's pauses (milliseconds once the heap holds the set-up objects)
        # would show up as latency: freeze what exists and pause it while measuring.
        gc.collect()
        gc.freeze()
        gc.disable()

        # Timeline: speakers start now, warm-up, measured window, then grace.
        speakers = [
            Speaker(loop, c, stats, cfg.frame_bytes, cfg.fps)
            for c in conns
            if c is not None and c.index % cfg.members < cfg.speakers
        ]
        stalled = [c for c in conns if c is not None and cfg.is_stalled(c.index)]
        stalled_per_room = [0] * cfg.rooms
        for c in stalled:
            stalled_per_room[c.room] += 1
        probe = Probe(cfg, pool, stalled)
        await probe.sample("load_start")
        # Stalled listeners stop reading before the first frame: their buffers (ours in
        # the kernel, the server's in its transport) fill during the warm-up.
        for c in stalled:
            c.stall()
        start_ns = perf_ns()
        watch_task = None
        stall_timeline: list = []
        if stalled:
            log(cfg, f"{len(stalled)} listener(s) stopped reading")
            watch_task = loop.create_task(
                watch_stalled(cfg, pool, stalled, start_ns, stall_timeline)
            )
        stats.w0 = start_ns + int(cfg.warmup * 1e9)
        stats.w1 = stats.w0 + int(cfg.duration * 1e9)
        series_task = None
        snaps: list[dict] = []
        if cfg.interval > 0:
            stats.set_buckets(int(cfg.interval * 1e9), soak.buckets(cfg.duration, cfg.interval))
            series_task = loop.create_task(
                sample_series(cfg, stats, me, pool, start_ns, stats.w0, snaps)
            )
        lt0 = loop.time() + 0.01
        period = 1.0 / cfg.fps
        for k, sp in enumerate(speakers):  # spread the speakers evenly over one period
            sp.start(lt0 + period * k / len(speakers), stats.w1)

        progress_task = loop.create_task(progress(cfg, stats, start_ns))
        await asyncio.sleep(max(0.0, (stats.w0 - perf_ns()) / 1e9))
        cpu0 = sample_cpu(cfg, me)
        t0 = perf_ns()
        await probe.sample("window_start")
        await asyncio.sleep(max(0.0, (stats.w1 - perf_ns()) / 1e9))
        cpu1 = sample_cpu(cfg, me)
        t1 = perf_ns()
        await probe.sample("window_end")
        for sp in speakers:
            sp.stop()
        await asyncio.sleep(cfg.grace)
        progress_task.cancel()
        if series_task is not None:
            await series_task  # its last snapshot was at the window end
        if watch_task is not None:
            watch_task.cancel()
        if stalled:
            await probe.sample("end")
        result = build_report(
            cfg,
            stats,
            conns,
            per_room,
            errors,
            cpu0,
            cpu1,
            (t1 - t0) / 1e9,
            stalled_per_room=stalled_per_room,
        )
        result["probes"] = probe.report()
        if series_task is not None:
            expected_b = [
                sum(
                    stats.sent_b[r][k] * max(0, per_room[r] - 1 - stalled_per_room[r])
                    for r in range(cfg.rooms)
                )
                for k in range(len(stats.recv_b))
            ]
            rows = soak.build_rows(
                snaps, stats.lat, stats.recv_b, expected_b, cfg.warmup, lat_end=len(stats.lat)
            )
            result["timeseries"] = {"interval_s": cfg.interval, "rows": rows}
            result["soak"] = soak.verdict(rows)
        if stalled:
            st = result["stalled"]
            st.update(await drain_stalled(cfg, stats, stalled))
            # Every frame for a stalled listener should be read after it resumes (buffered
            # somewhere) or counted as dropped_backlog by the server. The rest vanished
            # without a trace (e.g. discarded with its socket, or a drop not counted).
            dropped = result["probes"].get("dropped_backlog_run")
            if dropped is not None:
                st["frames_unaccounted"] = int(
                    st["frames_for_stalled_total"]
                    - st["frames_read_while_stalled"]
                    - st["frames_read_after_resume"]
                    - dropped
                )
            result["stalled"]["timeline_columns"] = [
                "s_after_stall",
                "server_rss_mib",
                "dropped_backlog_total",
                "sockets_local",
                "stalled_client_queued_kib",
            ]
            result["stalled"]["timeline"] = stall_timeline
        # Placement: a room is split when its members' sockets are on more than one node.
        where: dict[int, set[tuple[str, int]]] = {}
        for i, target in landed.items():
            where.setdefault(i // cfg.members, set()).add(target)
        result["rooms_split"] = sum(1 for s in where.values() if len(s) > 1)
        result["sockets_per_node"] = sorted(
            Counter(f"{h}:{p}" for h, p in landed.values()).values(), reverse=True
        )
        result["setup_s"] = round(setup_s, 2)
        result["setup_rest_retries"] = sum(n.rest.retries for n in nodes)
    finally:
        gc.enable()
        gc.unfreeze()
        await teardown(cfg, conns)
        pool.shutdown(wait=False, cancel_futures=True)
    if cfg.json_path:
        write_json(cfg.json_path, result)
    return result


async def teardown(cfg: LoadConfig, conns: list[BenchClient | None]) -> None:
    live = [c for c in conns if c is not None and c.state == OPEN]
    for c in live:
        if cfg.target == "voiceroom":
            c.send_text('{"type":"leave"}')
        c.close(1000)
    if live:
        try:
            await asyncio.wait_for(asyncio.gather(*(c.lost for c in live)), 3)
        except TimeoutError:
            pass
    for c in conns:
        if c is not None and c.transport is not None and not c.transport.is_closing():
            c.transport.abort()


async def progress(cfg: LoadConfig, stats: Stats, start_ns: int) -> None:
    last_recv, last_sent = stats.recv, stats.sent
    while True:
        await asyncio.sleep(1.0)
        now = perf_ns()
        phase = "warm-up" if now < stats.w0 else ("measure" if now < stats.w1 else "grace")
        recv, sent = stats.recv, stats.sent
        log(
            cfg,
            f"{(now - start_ns) / 1e9:5.1f}s {phase:8s} deliveries/s {recv - last_recv:7d}"
            f"  sent/s {sent - last_sent:5d}  gaps {stats.gap_frames}",
        )
        last_recv, last_sent = recv, sent


def run_in_uvloop(coro):
    """Run `coro` to the end in a fresh event loop, uvloop when installed (the load
    generator's loop: the plain asyncio loop cannot keep up with ~40,000 frames/s)."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def run(cfg: LoadConfig | None = None, **kwargs) -> dict:
    """Run one load test in a fresh uvloop event loop; returns the result dict."""
    if cfg is None:
        cfg = LoadConfig(**kwargs)
    res = run_in_uvloop(run_async(cfg))
    for w in res.get("warnings", []):
        print(f"WARNING: {w}", file=sys.stderr, flush=True)
    return res
