"""Load generator for voice fan-out: N rooms x M members x S speakers, one process.

    python -m bench.loadgen --target bare --url http://127.0.0.1:8765 --json out.json
    python -m bench.loadgen --target voiceroom --url http://127.0.0.1:8000 \\
        --server-pid 1234 --redis-pid 99

Speakers send binary frames of --frame-bytes at --fps; the payload starts with the
clients' Opus codec byte (0x02), the send time (perf_counter ns, big-endian int64) and
the speaker's index (uint32), padded with zeros. Listeners parse the server's 9-byte
header (kind, sender id, sequence), read the send time back and record the latency;
they check the sequence per sender for gaps.

Only frames SENT inside the measured window count for loss and latency; the tool waits
--grace seconds after the window for stragglers. Throughput and CPU per delivery use the
frames RECEIVED inside the window, the span over which CPU time is sampled.

--stalled K: the last K listeners of each room stop reading (transport.pause_reading())
when the load starts and stay paused until the report is made; they are left out of the
expected deliveries, latency and loss. Around the window the tool reads the servers' RSS
and, for voiceroom, /metrics (voiceroom_voice_*_total deltas, e.g. dropped_backlog).

--interval S: a time series (the soak): one row per S seconds through the warm-up and the
window (throughput, loss by send-time bucket, latency, RSS, CPU, /metrics drops) and a
verdict; the logic is in bench/soak.py.

This module is the command line. The parts live by role: bench.wsclient (the lean
WebSocket client: an asyncio Protocol on uvloop doing the HTTP Upgrade by hand and a
minimal RFC 6455 parser, so that one core can take ~40,000 frames/s), bench.client (the
room member and the speaker), bench.rest (REST set-up), bench.config (LoadConfig),
bench.orchestration (the run and its timeline), bench.probes (server CPU, RSS, /metrics)
and bench.report (the result dict and its summary). See docs/benchmarks.md for the
methodology.
"""

from __future__ import annotations

import argparse
import sys

from bench import soak
from bench.config import LoadConfig
from bench.orchestration import run
from bench.report import summary_line
from bench.rest import RestError

# `bench.loadgen.run(target="bare", urls=[...], ...)` is the documented Python entry point.
__all__ = ["LoadConfig", "build_parser", "main", "run", "summary_line"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.loadgen",
        description="Voice fan-out load generator (see docs/benchmarks.md).",
    )
    p.add_argument("--target", choices=["voiceroom", "bare"], default="voiceroom")
    p.add_argument(
        "--url",
        action="append",
        dest="urls",
        help="node base URL (repeat for several nodes; members go round-robin). "
        "Default http://127.0.0.1:8000",
    )
    p.add_argument("--rooms", type=int, default=10)
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--speakers", type=int, default=2)
    p.add_argument("--fps", type=float, default=50.0)
    p.add_argument("--frame-bytes", type=int, default=120)
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--grace", type=float, default=1.0, help="wait for stragglers (s)")
    p.add_argument("--server-pid", type=int, action="append", default=[], dest="server_pids")
    p.add_argument("--redis-pid", type=int, default=None)
    p.add_argument("--json", dest="json_path", default=None, help="write the results here")
    p.add_argument("--label", default="")
    p.add_argument("--setup-concurrency", type=int, default=4)
    p.add_argument("--user-cache", default=None, help="JSON file to reuse bench users")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--stalled",
        type=int,
        default=0,
        help="listeners per room that stop reading when the load starts (not measured)",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=0.0,
        help="> 0: a time series, one row per INTERVAL s (the soak; see bench.soak)",
    )
    p.add_argument(
        "--record-rooms",
        type=int,
        default=0,
        help="start recording in the first N rooms before the load (POST .../recording)",
    )
    p.add_argument(
        "--no-metrics",
        action="store_true",
        help="do not scrape /metrics (never scraped for --target bare)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = LoadConfig(
        target=args.target,
        urls=args.urls or ["http://127.0.0.1:8000"],
        rooms=args.rooms,
        members=args.members,
        speakers=args.speakers,
        fps=args.fps,
        frame_bytes=args.frame_bytes,
        duration=args.duration,
        warmup=args.warmup,
        grace=args.grace,
        server_pids=args.server_pids,
        redis_pid=args.redis_pid,
        json_path=args.json_path,
        label=args.label,
        setup_concurrency=args.setup_concurrency,
        user_cache=args.user_cache,
        progress=not args.quiet,
        stalled=args.stalled,
        metrics=False if args.no_metrics else None,
        interval=args.interval,
        record_rooms=args.record_rooms,
    )
    try:
        cfg.validate()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        res = run(cfg)
    except (RuntimeError, RestError, OSError, TimeoutError) as exc:
        print(f"loadgen failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(summary_line(res))
    if res.get("timeseries"):
        print(soak.table(res["timeseries"]["rows"]))
        print(soak.summary(res["soak"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
