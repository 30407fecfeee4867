"""Memory per idle socket: a voiceroom node's RSS with 0, then N idle sockets connected.

    python -m bench.idle --server both --sockets 1000     # bare relay, uvicorn, daphne
    python -m bench.idle --server uvicorn --sockets 1000 --rooms 50 --no-redis

Each node starts the way bench.run starts it (pinned to core 0, same environment, Redis
layer on by default with its own key prefix, a fresh SQLite file in a temporary
directory). The users and rooms are set up through the REST API (--rooms rooms of
--sockets/--rooms members, seat_count 0), then:

1. warm-up: --warmup-sockets members connect, read their `welcome`, leave and close, so
   the code paths and allocator arenas a socket needs exist before the baseline;
2. RSS before: the server's RSS (psutil, live children included; median of 5 samples)
   after --settle seconds with 0 sockets;
3. the N members join and connect one after another; each counts once it has read its
   `welcome` (the bare relay sends none: open is enough). Nobody speaks;
4. RSS after: --settle seconds later, measured again. KiB per idle socket =
   (RSS after - RSS before) / connected sockets;
   CPU: after each of the two RSS readings, the server's CPU time (user + sys) over
   --cpu-window seconds, as ms per second with 0 sockets and with N idle ones; the
   difference over N is the CPU an idle socket costs, in us per second;
5. they leave and close; once the node's /metrics says 0 local sockets (the time that
   takes is `release_s`), --settle seconds later the RSS once more.

The client (this process) runs on core 1. It prints a markdown table and writes JSON to
bench/results/<UTC timestamp>-idle.json. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import psutil

from bench.client import BenchClient, Stats
from bench.config import LoadConfig
from bench.orchestration import Node, connect_members, run_in_uvloop, setup_voiceroom, teardown
from bench.probes import process_cpu, scrape_metrics, servers_rss
from bench.report import cpu_model, fmt, md_table, write_json
from bench.run import LOADGEN_CORE, RESULTS, ROOT, Runner, machine_lock, server_list
from bench.wsclient import OPEN

KIB = 1024.0
MIB = 1024.0 * 1024.0


def log(msg: str) -> None:
    print(f"[bench.idle] {msg}", file=sys.stderr, flush=True)


async def stable_rss(pids: list[int], samples: int = 5, every: float = 0.2) -> int | None:
    """Median of a few RSS samples (bytes), so a passing allocation does not count."""
    values = []
    for k in range(samples):
        value = servers_rss(pids)
        if value is not None:
            values.append(value)
        if k < samples - 1:
            await asyncio.sleep(every)
    return int(statistics.median(values)) if values else None


def redis_rss(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return None


async def cpu_ms_per_s(pids: list[int], seconds: float) -> float | None:
    """The servers' CPU time (ms) per second of wall time over the next `seconds`
    (None if a process is gone, or for a window of 0)."""
    if seconds <= 0 or not pids:
        return None
    try:
        before = sum(process_cpu(pid) for pid in pids)
        start = time.monotonic()
        await asyncio.sleep(seconds)
        after = sum(process_cpu(pid) for pid in pids)
    except psutil.Error:
        return None
    return (after - before) * 1000.0 / (time.monotonic() - start)


async def measure_async(
    target: str,
    url: str,
    server_pids: list[int],
    *,
    label: str,
    sockets: int,
    rooms: int,
    settle: float = 5.0,
    cpu_window: float = 5.0,
    warmup_sockets: int = 40,
    setup_concurrency: int = 1,
    user_cache: str | None = None,
    redis_pid: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """One node: RSS with 0 sockets, then with `sockets` idle ones. Returns a result row."""
    if sockets < rooms or sockets % rooms:
        raise ValueError("--sockets must be a multiple of --rooms")
    members = sockets // rooms
    cfg = LoadConfig(
        target=target,
        urls=[url],
        rooms=rooms,
        members=members,
        speakers=1,
        label=label,
        setup_concurrency=setup_concurrency,
        user_cache=user_cache,
        server_pids=server_pids,
        progress=progress,
    )
    cfg.validate()

    def say(msg: str) -> None:
        if progress:
            print(f"[bench.idle {label}] {msg}", file=sys.stderr, flush=True)

    loop = asyncio.get_running_loop()
    nodes = [Node(url)]
    stats = Stats(rooms)
    stats.room_of = [i // members for i in range(sockets)]
    pool = ThreadPoolExecutor(max_workers=max(setup_concurrency, 4))
    conns: list[BenchClient | None] = [None] * sockets
    errors: list[str] = []
    want_metrics = target == "voiceroom"

    async def sockets_local() -> float | None:
        if not want_metrics:
            return None
        m = await loop.run_in_executor(pool, scrape_metrics, [url])
        return None if m is None else m.get("voiceroom_sockets_local")

    async def released(since: float, limit: float = 120.0) -> float | None:
        """Seconds from `since` until the node reports 0 local sockets (None: never/unknown).

        Closing is not the end of a socket's cost: the node still records the departure
        and tells the room. Wait for that, bounded, so the next reading is not taken mid-way.
        """
        if not want_metrics:
            return None
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if await sockets_local() == 0:
                return round(time.monotonic() - since, 1)
            await asyncio.sleep(0.5)
        say(f"WARNING: the node still reports sockets {limit:.0f} s after they closed")
        return None

    try:
        users, room_ids = [], list(range(rooms))
        t0 = time.monotonic()
        if target == "voiceroom":
            users, room_ids = await setup_voiceroom(cfg, nodes, loop, pool)
        setup_s = time.monotonic() - t0

        warm = min(warmup_sockets, sockets)
        if warm:
            say(f"warm-up: {warm} sockets connect, then leave")
            await connect_members(
                cfg, nodes, loop, pool, stats, conns, errors, range(warm), users, room_ids
            )
            t0 = time.monotonic()
            await teardown(cfg, conns)
            conns[:] = [None] * sockets
            errors.clear()
            await released(t0)
        await asyncio.sleep(settle)
        rss0 = await stable_rss(server_pids)
        redis0 = redis_rss(redis_pid)
        local0 = await sockets_local()
        cpu0 = await cpu_ms_per_s(server_pids, cpu_window)
        say(f"0 sockets: server RSS {rss0 / MIB:.1f} MiB; connecting {sockets} ...")

        t0 = time.monotonic()
        await connect_members(
            cfg, nodes, loop, pool, stats, conns, errors, range(sockets), users, room_ids
        )
        connect_s = time.monotonic() - t0
        connected = sum(1 for c in conns if c is not None)
        if errors:
            say(f"WARNING: {len(errors)} connection(s) failed; first: {errors[0]}")
        if not connected:
            raise RuntimeError(f"no socket connected: {errors[:3]}")
        await asyncio.sleep(settle)
        open_now = sum(1 for c in conns if c is not None and c.state == OPEN)
        rss1 = await stable_rss(server_pids)
        redis1 = redis_rss(redis_pid)
        local1 = await sockets_local()
        cpu1 = await cpu_ms_per_s(server_pids, cpu_window)
        say(f"{connected} idle sockets: server RSS {rss1 / MIB:.1f} MiB")

        t0 = time.monotonic()
        await teardown(cfg, conns)
        conns[:] = [None] * sockets
        release_s = await released(t0)
        await asyncio.sleep(settle)
        rss2 = await stable_rss(server_pids)
        local2 = await sockets_local()
    finally:
        await teardown(cfg, conns)
        pool.shutdown(wait=False, cancel_futures=True)

    per_socket = (rss1 - rss0) / connected / KIB if rss0 and rss1 else None
    redis_per_socket = (redis1 - redis0) / connected / KIB if redis0 and redis1 else None
    cpu_per_socket = (
        (cpu1 - cpu0) * 1000.0 / connected if cpu0 is not None and cpu1 is not None else None
    )
    return {
        "server": label,
        "target": target,
        "sockets_wanted": sockets,
        "sockets_connected": connected,
        "sockets_open_at_measure": open_now,
        "rooms": rooms,
        "members": members,
        "connect_failures": len(errors),
        "errors": errors[:10],
        "server_close_codes": {str(k): v for k, v in stats.close_codes.items()},
        "text_frames_read": stats.text_frames,
        "server_sockets_local": {"before": local0, "idle": local1, "after_close": local2},
        "rss_before_bytes": rss0,
        "rss_idle_bytes": rss1,
        "rss_after_close_bytes": rss2,
        "rss_before_mib": round(rss0 / MIB, 1) if rss0 else None,
        "rss_idle_mib": round(rss1 / MIB, 1) if rss1 else None,
        "rss_after_close_mib": round(rss2 / MIB, 1) if rss2 else None,
        "kib_per_idle_socket": round(per_socket, 1) if per_socket is not None else None,
        "redis_pid": redis_pid,
        "redis_kib_per_socket": round(redis_per_socket, 2)
        if redis_per_socket is not None
        else None,
        "cpu_ms_per_s_before": round(cpu0, 2) if cpu0 is not None else None,
        "cpu_ms_per_s_idle": round(cpu1, 2) if cpu1 is not None else None,
        # The CPU one idle socket costs the server, us per second (may be < 0 by noise).
        "cpu_us_per_idle_socket_s": round(cpu_per_socket, 2)
        if cpu_per_socket is not None
        else None,
        "cpu_window_s": cpu_window,
        "release_s": release_s,
        "setup_s": round(setup_s, 1),
        "connect_s": round(connect_s, 1),
        "settle_s": settle,
        "warmup_sockets": warm,
    }


def measure(*args, **kwargs) -> dict[str, Any]:
    """`measure_async` in a fresh uvloop event loop (the load generator's loop)."""
    return run_in_uvloop(measure_async(*args, **kwargs))


def table(rows: list[dict]) -> str:
    cells = []
    for r in rows:
        if "error" in r:
            cells.append([r["server"], f"failed: {r['error'][:100]}"])
            continue
        cells.append([
            r["server"],
            str(r["sockets_connected"]),
            fmt(r["rss_before_mib"]),
            fmt(r["rss_idle_mib"]),
            fmt(r["kib_per_idle_socket"]),
            fmt(r["rss_after_close_mib"]),
            fmt(r["redis_kib_per_socket"]),
            fmt(r.get("cpu_ms_per_s_before")),
            fmt(r.get("cpu_ms_per_s_idle")),
            fmt(r.get("cpu_us_per_idle_socket_s")),
            fmt(r["connect_s"]),
            fmt(r.get("release_s")),
        ])  # fmt: skip
    columns = ["server", "idle sockets", "RSS 0 sockets MiB", "RSS idle MiB",
               "KiB per idle socket", "RSS after close MiB", "Redis KiB per socket",
               "CPU ms/s 0 sockets", "CPU ms/s idle", "CPU us/s per idle socket",
               "connect s", "release s"]  # fmt: skip
    return md_table(columns, cells)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--server", type=server_list, default="both",
                   help="voiceroom server(s) to measure after the bare relay (as in "
                   "bench.run: uvicorn, uvicorn-asgi, daphne, both, all, none, "
                   "a comma list)")  # fmt: skip
    p.add_argument("--no-bare", action="store_true", help="skip the bare relay (the floor)")
    p.add_argument("--sockets", type=int, default=1000)
    p.add_argument("--rooms", type=int, default=50, help="the sockets are spread over these")
    p.add_argument("--settle", type=float, default=5.0, help="seconds before each RSS reading")
    p.add_argument("--cpu-window", type=float, default=5.0,
                   help="seconds of CPU measured with 0 and N idle sockets (0: none)")  # fmt: skip
    p.add_argument("--warmup-sockets", type=int, default=40)
    p.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    p.add_argument("--no-redis", action="store_true", help="embedded in-process layer")
    p.add_argument("--database-url", default=None, help="default: fresh SQLite in a temp dir")
    p.add_argument("--keep-workdir", action="store_true")
    p.add_argument("--lock-timeout", type=float, default=1800.0,
                   help="seconds to wait for another bench run on this machine")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.sockets < args.rooms or args.sockets % args.rooms:
        print("error: --sockets must be a multiple of --rooms", file=sys.stderr)
        return 2
    if args.sockets // args.rooms > 500:
        print("error: at most 500 members per room (room capacity)", file=sys.stderr)
        return 2
    with machine_lock(args.lock_timeout):
        return _main(args, argv)


def _main(args: argparse.Namespace, argv: list[str] | None) -> int:
    servers = list(args.server)
    args.nodes = 1  # Runner's option; one node here
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {int(LOADGEN_CORE)})  # servers get core 0 through taskset
    else:
        log("WARNING: fewer than 2 cores: server and client share one")
    runner = Runner(args, {})
    if servers:
        runner.check_redis()
    sqlite = runner.database_url.startswith("sqlite")
    started = datetime.now(UTC)
    rows: list[dict] = []
    common = {
        "sockets": args.sockets,
        "rooms": args.rooms,
        "settle": args.settle,
        "cpu_window": args.cpu_window,
        "warmup_sockets": args.warmup_sockets,
    }
    try:
        if not args.no_bare:
            log("--- bare relay")
            try:
                with runner.bare_node() as (proc, url):
                    rows.append(measure("bare", url, [proc.pid], label="bare", **common))
            except Exception as exc:
                log(f"bare relay failed: {exc}")
                rows.append({"server": "bare", "error": f"{type(exc).__name__}: {exc}"})
        for server in servers:
            log(f"--- {server}")
            try:
                with runner.server_nodes(server, 1) as (procs, urls):
                    rows.append(
                        measure(
                            "voiceroom",
                            urls[0],
                            [p.pid for p in procs],
                            label=server,
                            setup_concurrency=1 if sqlite else 4,
                            user_cache=runner.user_cache,
                            redis_pid=runner.redis_pid,
                            **common,
                        )
                    )
            except Exception as exc:
                log(f"{server} failed: {exc}")
                rows.append({"server": server, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        runner.cleanup_redis()
        if not args.keep_workdir:
            shutil.rmtree(runner.workdir, ignore_errors=True)
    md = table(rows)
    summary = {
        "started": started.isoformat(timespec="seconds"),
        "servers": servers,
        "redis": runner.redis_url,
        "database": "sqlite (temp)" if not args.database_url else "given",
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "command": "python -m bench.idle " + " ".join(argv if argv is not None else sys.argv[1:]),
        "table_md": md,
        "runs": rows,
    }
    out = RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}-idle.json"
    write_json(str(out), summary)
    print(md)
    print(f"\nresults: {out.relative_to(ROOT)}")
    for r in rows:
        if r.get("connect_failures"):
            print(f"WARNING ({r['server']}): {r['connect_failures']} sockets failed to connect")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
