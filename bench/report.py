"""From counters to a result: percentiles, CPU per delivery, the result dict, and the
one-line and table formatting shared by bench.run, bench.idle and bench.soak."""

from __future__ import annotations

import json
import math
import os
import platform
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def percentile(sorted_values, q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]


def fmt(v, spec: str = "{:.1f}") -> str:
    """A table cell: `-` for a value not measured."""
    return "-" if v is None else spec.format(v)


def md_table(columns: list[str], rows: list[list[str]]) -> str:
    """A markdown table: the header, its separator, then one line per row of cells."""
    lines = [columns, *rows]
    out = ["| " + " | ".join(cells) + " |" for cells in lines]
    out.insert(1, "|" + "---|" * len(columns))
    return "\n".join(out)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_json(path: str, data: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def _delta_sum(before: dict | None, after: dict | None, pids: list[int]) -> float | None:
    """The summed change of a per-process figure between two samples, over the processes
    that have it in both (None if none has)."""
    deltas = [
        after[p] - before[p]
        for p in pids
        if before and after and before.get(p) is not None and after.get(p) is not None
    ]
    return sum(deltas) if deltas else None


def build_report(cfg, stats, conns, per_room, errors, cpu0, cpu1, seconds, stalled_per_room=None):
    # Each frame is expected by every other connected member of its room, except the
    # stalled listeners (they are not reading; what reaches them is not measured).
    stalled_per_room = stalled_per_room or [0] * cfg.rooms
    expected = sum(
        stats.sent_win_room[r] * max(0, per_room[r] - 1 - stalled_per_room[r])
        for r in range(cfg.rooms)
    )
    received = stats.win_recv
    lat = sorted(stats.lat)
    lat_ms = {
        "p50": percentile(lat, 0.50) / 1e6 if lat else None,
        "p95": percentile(lat, 0.95) / 1e6 if lat else None,
        "p99": percentile(lat, 0.99) / 1e6 if lat else None,
        "max": lat[-1] / 1e6 if lat else None,
        "mean": (sum(lat) / len(lat)) / 1e6 if lat else None,
        "n": len(lat),
    }
    deliveries = stats.win_recv_rt

    def per_delivery(cpu_s):
        return cpu_s / deliveries * 1e6 if deliveries else None

    server_cpu = _delta_sum(cpu0["server"], cpu1["server"], cfg.server_pids)
    server_sys = _delta_sum(cpu0.get("server_sys"), cpu1.get("server_sys"), cfg.server_pids)
    redis_cpu = None
    if cpu0["redis"] is not None and cpu1["redis"] is not None:
        redis_cpu = cpu1["redis"] - cpu0["redis"]
    self_cpu = cpu1["self"] - cpu0["self"]
    self_pct = 100.0 * self_cpu / seconds
    # CPU used by everything else on the machine during the window: interference.
    others = cpu1["machine_busy"] - cpu0["machine_busy"] - self_cpu
    others -= (server_cpu or 0.0) + (redis_cpu or 0.0)
    others_pct = max(0.0, 100.0 * others / seconds)
    warnings = []
    if self_pct > 85:
        warnings.append(
            f"load generator CPU {self_pct:.0f}% of one core (> 85%): it may be the bottleneck"
        )
    if others_pct > 20:
        warnings.append(
            f"other processes used {others_pct:.0f}% of a core during the window: noisy machine"
        )
    if errors:
        warnings.append(f"{len(errors)} of {len(conns)} connections failed")
    if stats.skipped_ticks:
        warnings.append(f"speakers skipped {stats.skipped_ticks} ticks (loop stalls)")
    loss = (1.0 - received / expected) * 100.0 if expected else None

    def r2(v):
        return round(v, 3) if isinstance(v, float) else v

    result = {
        "label": cfg.label,
        "target": cfg.target,
        "urls": cfg.urls,
        "params": {
            "rooms": cfg.rooms,
            "members": cfg.members,
            "speakers": cfg.speakers,
            "fps": cfg.fps,
            "frame_bytes": cfg.frame_bytes,
            "duration": cfg.duration,
            "warmup": cfg.warmup,
            "grace": cfg.grace,
            "stalled": cfg.stalled,
        },
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "loadgen_affinity": sorted(os.sched_getaffinity(0)),
        "measured_s": round(seconds, 3),
        "connections": {
            "wanted": len(conns),
            "connected": sum(1 for c in conns if c is not None),
            "failed": len(errors),
            "errors": errors[:10],
            "server_close_codes": {str(k): v for k, v in stats.close_codes.items()},
        },
        "stalled": {
            "per_room": cfg.stalled,
            "sockets": sum(stalled_per_room),
            # Frames sent in the window into rooms with stalled listeners, times those
            # listeners: what the server had to drop (or buffer) for them.
            "frames_for_stalled_in_window": sum(
                stats.sent_win_room[r] * stalled_per_room[r] for r in range(cfg.rooms)
            ),
            # The same over the whole run (they stall before the first frame).
            "frames_for_stalled_total": sum(
                stats.sent_room[r] * stalled_per_room[r] for r in range(cfg.rooms)
            ),
        },
        "sent_total": stats.sent,
        "sent_in_window": sum(stats.sent_win_room),
        "expected_deliveries": expected,
        "received_in_window": received,
        "deliveries_in_window": deliveries,
        "deliveries_per_s": r2(deliveries / seconds),
        "expected_deliveries_per_s": r2(expected / seconds),
        "loss_pct": r2(loss) if loss is not None else None,
        "gap_events": stats.gap_events,
        "gap_frames": stats.gap_frames,
        "reorders": stats.reorders,
        "self_echo": stats.self_echo,
        "misrouted": stats.misrouted,
        "malformed": stats.malformed,
        "bad_kind": stats.bad_kind,
        "text_frames": stats.text_frames,
        "latency_ms": {k: r2(v) for k, v in lat_ms.items()},
        "server_pids": cfg.server_pids,
        "server_cpu_s": r2(server_cpu),
        "server_cpu_pct": r2(100 * server_cpu / seconds) if server_cpu is not None else None,
        "server_cpu_us_per_delivery": r2(per_delivery(server_cpu))
        if server_cpu is not None
        else None,
        # Of the server's CPU, what the kernel spent on its behalf (system time).
        "server_sys_us_per_delivery": r2(per_delivery(server_sys))
        if server_sys is not None
        else None,
        "redis_pid": cfg.redis_pid,
        "redis_cpu_s": r2(redis_cpu),
        "redis_cpu_us_per_delivery": r2(per_delivery(redis_cpu)) if redis_cpu is not None else None,
        "loadgen_cpu_pct": r2(self_pct),
        "loadgen_cpu_us_per_delivery": r2(per_delivery(self_cpu)),
        "other_processes_cpu_pct": r2(others_pct),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "warnings": warnings,
    }
    return result


def summary_line(res: dict) -> str:
    lat = res.get("latency_ms") or {}

    def f(v, fmt="{:.1f}"):
        return "-" if v is None else fmt.format(v)

    line = (
        f"{res.get('target')} {res.get('label', '')}:"
        f" deliveries/s {f(res['deliveries_per_s'], '{:.0f}')}"
        f" (expected {f(res['expected_deliveries_per_s'], '{:.0f}')}),"
        f" loss {f(res['loss_pct'], '{:.3f}')}%, gaps {res['gap_frames']},"
        f" latency ms p50 {f(lat.get('p50'), '{:.2f}')} p95 {f(lat.get('p95'), '{:.2f}')}"
        f" p99 {f(lat.get('p99'), '{:.2f}')} max {f(lat.get('max'), '{:.2f}')},"
        f" server CPU {f(res['server_cpu_us_per_delivery'])} us/delivery"
        f" (kernel {f(res.get('server_sys_us_per_delivery'))}),"
        f" redis {f(res['redis_cpu_us_per_delivery'])} us/delivery,"
        f" loadgen CPU {f(res['loadgen_cpu_pct'], '{:.0f}')}%"
        f" ({f(res['loadgen_cpu_us_per_delivery'])} us/delivery)"
    )
    probes = res.get("probes") or {}
    rss = probes.get("server_rss_mib") or {}
    if rss.get("window_start") is not None:
        line += (
            f", server RSS MiB {f(rss.get('load_start'))} (load start)"
            f" {f(rss.get('window_start'))} -> {f(rss.get('window_end'))} (window)"
        )
    stalled = res.get("stalled") or {}
    if stalled.get("sockets"):
        line += (
            f"; {stalled['sockets']} stalled listener(s) (not measured),"
            f" dropped_backlog in window {f(probes.get('dropped_backlog_window'), '{:.0f}')}"
            f" of {stalled['frames_for_stalled_in_window']} frames for them"
        )
    return line
