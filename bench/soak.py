"""The soak's time series: per-interval rows from the load generator's snapshots, a
least-squares slope, and the verdict (RSS flat after warm-up, no loss, latency flat).

Pure functions only (no sockets, no processes), so that tests/bench can check them.
`bench.loadgen` takes the snapshots (`--interval S`); `python -m bench.run --scenario
soak` starts the node and prints what this module builds. See docs/benchmarks.md, "Soak".

A snapshot is a dict taken at one interval boundary (seconds since load start `t_s`;
`due_s` when it was scheduled, from `marks`):
cumulative counters of the load generator (`recv` voice frames read, `gap_frames`,
`lat_n` = latencies recorded so far), cumulative CPU seconds (`cpu_self`, `cpu_server`,
`cpu_redis`, `machine_busy` = all CPUs of the machine, `steal` = CPU time the hypervisor
gave to other guests), `skipped_ticks` (the speakers' ticks skipped because the load
generator's own loop ran late), `utc`, `rss_mib` (servers),
`loadgen_rss_mib` and `metrics` (the nodes' /metrics, summed; None when not scraped).
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from bench.report import fmt, md_table, percentile

# /metrics counters shown per interval (voiceroom_voice_<name>_total).
DROP_COUNTERS = ("dropped_backlog", "dropped_overload", "dropped_rate", "dropped_muted")
EPS = 1e-6


def marks(warmup: float, duration: float, interval: float) -> list[float]:
    """Snapshot times (s since load start): every `interval` through the warm-up, then
    every `interval` from the window start; the window start and end are always marks.

    >>> marks(60, 90, 30)
    [0.0, 30.0, 60.0, 90.0, 120.0, 150.0]
    """
    if interval <= 0 or duration <= 0 or warmup < 0:
        raise ValueError("interval and duration must be > 0, warmup >= 0")
    out = []
    k = 0
    while k * interval < warmup - EPS:
        out.append(float(k * interval))
        k += 1
    k = 0
    while k * interval < duration - EPS:
        out.append(float(warmup + k * interval))
        k += 1
    out.append(float(warmup + duration))
    return out


def buckets(duration: float, interval: float) -> int:
    """How many measured intervals (send-time buckets) the window has: ceil(duration/interval)."""
    dur_ns, int_ns = round(duration * 1e9), round(interval * 1e9)
    return -(-dur_ns // int_ns)


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """Least-squares line y = slope * x + intercept; None if it is not defined."""
    pts = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None]
    if len(pts) < 2:
        return None
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx <= 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in pts) / sxx
    return slope, my - slope * mx


def _delta(a, b):
    return None if a is None or b is None else b - a


def _r(v, nd=3):
    return None if v is None else round(v, nd)


def build_rows(
    snaps: list[dict],
    lat,
    recv_b: list[int],
    expected_b: list[int],
    warmup: float,
    lat_end: int | None = None,
) -> list[dict]:
    """One row per pair of consecutive snapshots.

    - Throughput, CPU, RSS, /metrics deltas, gaps: what happened between the two
      snapshots (frames RECEIVED in the interval, CPU used in it, RSS at its end).
    - Loss (measured rows only): the frames SENT in the interval (send-time bucket k of
      the window), received / expected (`recv_b[k]`, `expected_b[k]`).
    - Latency (measured rows only): the latencies recorded while the interval ran
      (`lat[a.lat_n:b.lat_n]`: frames sent inside the window, received in the interval).
      The last measured row also takes what arrived after the window, up to `lat_end`,
      so the rows add up to the whole window.
    """
    rows: list[dict] = []
    k = 0

    def is_measured(snap: dict) -> bool:  # by the scheduled time: a late snapshot stays
        return snap.get("due_s", snap["t_s"]) >= warmup - EPS

    n_measured = sum(1 for a in snaps[:-1] if is_measured(a))
    for a, b in itertools.pairwise(snaps):
        dt = b["t_s"] - a["t_s"]
        measured = is_measured(a)
        deliveries = b["recv"] - a["recv"]
        server_cpu = _delta(a.get("cpu_server"), b.get("cpu_server"))
        redis_cpu = _delta(a.get("cpu_redis"), b.get("cpu_redis"))
        self_cpu = b["cpu_self"] - a["cpu_self"]
        others = b["machine_busy"] - a["machine_busy"] - self_cpu
        others -= (server_cpu or 0.0) + (redis_cpu or 0.0)
        row: dict[str, Any] = {
            "phase": "measure" if measured else "warm-up",
            "t_start_s": _r(a["t_s"] - warmup, 1),  # seconds from the window start
            "t_end_s": _r(b["t_s"] - warmup, 1),
            "seconds": _r(dt),
            "deliveries": deliveries,
            "deliveries_per_s": _r(deliveries / dt if dt > 0 else None, 1),
            "loss_pct": None,
            "expected": None,
            "received": None,
            "latency_ms": {"p50": None, "p99": None, "max": None, "n": 0},
            "gap_frames": b["gap_frames"] - a["gap_frames"],
            "rss_start_mib": a.get("rss_mib"),
            "rss_mib": b.get("rss_mib"),
            "loadgen_rss_mib": b.get("loadgen_rss_mib"),
            "server_cpu_pct": _r(
                100 * server_cpu / dt if server_cpu is not None and dt > 0 else None, 1
            ),
            "server_cpu_us_per_delivery": _r(
                server_cpu / deliveries * 1e6 if server_cpu is not None and deliveries else None,
                2,
            ),
            "redis_cpu_us_per_delivery": _r(
                redis_cpu / deliveries * 1e6 if redis_cpu is not None and deliveries else None, 2
            ),
            "loadgen_cpu_pct": _r(100 * self_cpu / dt if dt > 0 else None, 1),
            "other_processes_cpu_pct": _r(max(0.0, 100 * others / dt) if dt > 0 else None, 1),
            "drops": None,
            "sockets_local": None,
            "loadgen_skipped_ticks": _delta(a.get("skipped_ticks"), b.get("skipped_ticks")),
            "steal_pct": _r(
                100 * steal / dt
                if (steal := _delta(a.get("steal"), b.get("steal"))) is not None and dt > 0
                else None,
                1,
            ),
            "utc_end": b.get("utc"),
        }
        ma, mb = a.get("metrics"), b.get("metrics")
        if ma is not None and mb is not None:
            row["drops"] = {
                name: mb.get(f"voiceroom_voice_{name}_total", 0.0)
                - ma.get(f"voiceroom_voice_{name}_total", 0.0)
                for name in DROP_COUNTERS
            }
        if mb is not None:
            row["sockets_local"] = mb.get("voiceroom_sockets_local")
        if measured:
            if k < len(expected_b):
                exp, got = expected_b[k], recv_b[k]
                row["expected"], row["received"] = exp, got
                row["loss_pct"] = _r((1.0 - got / exp) * 100.0 if exp else None, 6)
            # `lat` holds frames sent inside the window only: the first measured row takes
            # all of them from the start, even those read just before its snapshot.
            i0, i1 = (0 if k == 0 else a["lat_n"]), b["lat_n"]
            if k == n_measured - 1 and lat_end is not None:
                i1 = max(i1, lat_end)
            vals = sorted(lat[i0:i1])
            if vals:
                row["latency_ms"] = {
                    "p50": _r(percentile(vals, 0.50) / 1e6),
                    "p99": _r(percentile(vals, 0.99) / 1e6),
                    "max": _r(vals[-1] / 1e6),
                    "n": len(vals),
                }
            k += 1
        rows.append(row)
    return rows


@dataclass
class Limits:
    """What the verdict calls flat (see docs/benchmarks.md, "Soak")."""

    # RSS: window end - window start, and the fitted rise over the window, at most
    # max(rss_mib, rss_pct % of the RSS at the window start).
    rss_mib: float = 2.0
    rss_pct: float = 2.0
    # Loss over the whole window, in %.
    loss_pct: float = 0.0
    # p99: the fitted rise over the window at most max(p99_ms, p99_rel x median p99).
    p99_ms: float = 1.0
    p99_rel: float = 0.5
    # Other processes above this (% of one core) in some interval: a noisy machine.
    noisy_pct: float = 20.0


def verdict(rows: list[dict], limits: Limits | None = None) -> dict:
    """The summary of the measured rows: RSS growth and slope, loss, p99 first/last and
    slope, drops, noise; `ok` per check and overall."""
    lim = limits or Limits()
    m = [r for r in rows if r["phase"] == "measure"]
    if not m:
        raise ValueError("no measured interval")
    t0 = m[0]["t_start_s"]
    minutes = (m[-1]["t_end_s"] - t0) / 60.0
    # RSS: the window start, then the end of every measured interval.
    xs = [0.0] + [(r["t_end_s"] - t0) / 60.0 for r in m]
    ys = [m[0]["rss_start_mib"]] + [r["rss_mib"] for r in m]
    rss_start, rss_end = ys[0], ys[-1]
    rss: dict[str, Any] = {
        "start_mib": rss_start,
        "end_mib": rss_end,
        "first_interval_mib": m[0]["rss_mib"],
        "max_mib": None,
        "growth_mib": None,
        "growth_pct": None,
        "slope_mib_per_min": None,
        "fitted_growth_mib": None,
        "allowed_mib": None,
        "ok": None,
    }
    known = [y for y in ys if y is not None]
    if known:
        rss["max_mib"] = max(known)
    fit = linear_fit(xs, ys)
    if rss_start is not None and rss_end is not None:
        allowed = max(lim.rss_mib, rss_start * lim.rss_pct / 100.0)
        growth = rss_end - rss_start
        rss.update(
            growth_mib=_r(growth, 2),
            growth_pct=_r(100.0 * growth / rss_start if rss_start else None, 2),
            allowed_mib=_r(allowed, 2),
        )
        ok = growth <= allowed
        if fit is not None:
            rss["slope_mib_per_min"] = _r(fit[0], 4)
            rss["fitted_growth_mib"] = _r(fit[0] * minutes, 2)
            ok = ok and fit[0] * minutes <= allowed
        rss["ok"] = ok
    expected = sum(r["expected"] or 0 for r in m)
    received = sum(r["received"] or 0 for r in m)
    loss_pct = (1.0 - received / expected) * 100.0 if expected else None
    worst = max((r["loss_pct"] for r in m if r["loss_pct"] is not None), default=None)
    drops = None
    if all(r["drops"] is not None for r in m):
        drops = {name: sum(r["drops"][name] for r in m) for name in DROP_COUNTERS}
    loss = {
        "expected": expected,
        "received": received,
        "loss_pct": _r(loss_pct, 6),
        "worst_interval_pct": worst,
        "gap_frames": sum(r["gap_frames"] for r in m),
        "drops": drops,
        "ok": loss_pct is not None and loss_pct <= lim.loss_pct,
    }
    p99s = [r["latency_ms"]["p99"] for r in m]
    known_p99 = [p for p in p99s if p is not None]
    lat: dict[str, Any] = {
        "p99_first_ms": p99s[0],
        "p99_last_ms": p99s[-1],
        "p99_median_ms": None,
        "p99_max_ms": None,
        "max_ms": None,
        "p99_slope_ms_per_min": None,
        "p99_fitted_rise_ms": None,
        "allowed_rise_ms": None,
        "ok": None,
    }
    if known_p99:
        med = statistics.median(known_p99)
        allowed = max(lim.p99_ms, lim.p99_rel * med)
        lat.update(
            p99_median_ms=_r(med),
            p99_max_ms=max(known_p99),
            max_ms=max(r["latency_ms"]["max"] for r in m if r["latency_ms"]["max"] is not None),
            allowed_rise_ms=_r(allowed),
        )
        mid = [(r["t_start_s"] + r["t_end_s"]) / 2 / 60.0 for r in m]
        fit = linear_fit(mid, p99s)
        if fit is not None:
            lat["p99_slope_ms_per_min"] = _r(fit[0], 4)
            lat["p99_fitted_rise_ms"] = _r(fit[0] * minutes, 3)
            lat["ok"] = fit[0] * minutes <= allowed
        else:
            lat["ok"] = True  # one interval: nothing to compare
    deliveries = sum(r["deliveries"] for r in m)
    seconds = sum(r["seconds"] for r in m)
    cpus = [r["server_cpu_us_per_delivery"] for r in m if r["server_cpu_us_per_delivery"]]
    others = [r["other_processes_cpu_pct"] for r in m if r["other_processes_cpu_pct"] is not None]
    steal = [r.get("steal_pct") for r in m if r.get("steal_pct") is not None]
    skipped = [r.get("loadgen_skipped_ticks") or 0 for r in m]
    noise = {
        "other_processes_cpu_pct_mean": _r(statistics.fmean(others), 1) if others else None,
        "other_processes_cpu_pct_max": max(others) if others else None,
        "noisy_intervals": sum(1 for o in others if o > lim.noisy_pct),
        "steal_pct_max": max(steal) if steal else None,
        # The load generator's own loop ran > 5 frame periods late (core 1 disturbed).
        "loadgen_skipped_ticks": sum(skipped),
        "intervals_with_skipped_ticks": sum(1 for n in skipped if n),
        "noisy": any(o > lim.noisy_pct for o in others) or any(skipped),
    }
    failed = [
        name
        for name, part in (("rss", rss), ("loss", loss), ("latency", lat))
        if part["ok"] is False
    ]
    unknown = [name for name, part in (("rss", rss), ("latency", lat)) if part["ok"] is None]
    if failed:
        text = "FAIL: " + ", ".join(failed) + " (see below)"
    elif unknown:
        text = "INCOMPLETE: no figure for " + ", ".join(unknown)
    else:
        text = "PASS: RSS flat, no loss, latency flat"
    if noise["noisy"]:
        text += "; noisy machine:"
        if noise["noisy_intervals"]:
            text += (
                " other processes used up to "
                f"{noise['other_processes_cpu_pct_max']:.0f}% of a core "
                f"({noise['noisy_intervals']} of {len(m)} intervals over"
                f" {lim.noisy_pct:.0f}%)"
            )
        if noise["intervals_with_skipped_ticks"]:
            text += (
                f"{',' if noise['noisy_intervals'] else ''} the load generator's own loop"
                f" stalled in {noise['intervals_with_skipped_ticks']} interval(s)"
                f" ({noise['loadgen_skipped_ticks']} speaker ticks skipped)"
            )
    return {
        "verdict": text,
        "ok": not failed and not unknown,
        "intervals": len(m),
        "measured_min": _r(minutes, 2),
        "deliveries_per_s": _r(deliveries / seconds if seconds else None, 1),
        "server_cpu_us_per_delivery": _r(
            statistics.fmean(cpus) if cpus else None, 2
        ),  # mean of the intervals
        "rss": rss,
        "loss": loss,
        "latency": lat,
        "noise": noise,
        "limits": asdict(lim),
    }


def table(rows: list[dict]) -> str:
    """The time series as a markdown table (one row per interval)."""
    cells = []
    for r in rows:
        lat = r["latency_ms"]
        d = r["drops"]
        drops = "-" if d is None else "/".join(f"{d[n]:.0f}" for n in DROP_COUNTERS)
        cells.append([
            r["phase"],
            f"{r['t_start_s']:.0f} to {r['t_end_s']:.0f}",
            fmt(r["deliveries_per_s"], "{:.0f}"),
            fmt(r["loss_pct"], "{:.2f}"),
            fmt(lat["p50"], "{:.2f}"),
            fmt(lat["p99"], "{:.2f}"),
            fmt(lat["max"], "{:.1f}"),
            fmt(r["rss_mib"]),
            fmt(r["server_cpu_us_per_delivery"]),
            drops,
            str(r["gap_frames"]),
            fmt(r["other_processes_cpu_pct"], "{:.0f}"),
            fmt(r["loadgen_cpu_pct"], "{:.0f}"),
            fmt(r.get("loadgen_skipped_ticks"), "{:.0f}"),
        ])  # fmt: skip
    columns = ["phase", "t s", "deliveries/s", "loss %", "p50 ms", "p99 ms", "max ms", "RSS MiB",
               "server CPU us/delivery", "drops backlog/overload/rate/muted", "gaps",
               "others' CPU %", "loadgen CPU %", "loadgen skipped ticks"]  # fmt: skip
    return md_table(columns, cells)


def summary(v: dict) -> str:
    """The verdict and its figures as markdown lines."""
    rss, loss, lat, noise = v["rss"], v["loss"], v["latency"], v["noise"]
    drops = loss["drops"]
    drops_s = "-" if drops is None else ", ".join(f"{k} {drops[k]:.0f}" for k in DROP_COUNTERS)
    return "\n".join(
        [
            f"**Verdict: {v['verdict']}.**",
            "",
            f"- RSS after warm-up: {fmt(rss['start_mib'])} MiB at the window start, "
            f"{fmt(rss['end_mib'])} MiB at its end ({fmt(rss['growth_mib'], '{:+.1f}')} MiB, "
            f"{fmt(rss['growth_pct'], '{:+.2f}')} %); linear fit "
            f"{fmt(rss['slope_mib_per_min'], '{:+.3f}')} MiB/min "
            f"({fmt(rss['fitted_growth_mib'], '{:+.1f}')} MiB over {v['measured_min']:.1f} min); "
            f"max {fmt(rss['max_mib'])} MiB; allowed {fmt(rss['allowed_mib'])} MiB.",
            f"- Loss: {fmt(loss['loss_pct'], '{:.4f}')} % ({loss['received']} of "
            f"{loss['expected']} expected deliveries; worst interval "
            f"{fmt(loss['worst_interval_pct'], '{:.4f}')} %); sequence gaps "
            f"{loss['gap_frames']}; /metrics drops: {drops_s}.",
            f"- Latency: p99 {fmt(lat['p99_first_ms'], '{:.2f}')} ms in the first interval, "
            f"{fmt(lat['p99_last_ms'], '{:.2f}')} ms in the last (median "
            f"{fmt(lat['p99_median_ms'], '{:.2f}')}, worst {fmt(lat['p99_max_ms'], '{:.2f}')}); "
            f"linear fit {fmt(lat['p99_slope_ms_per_min'], '{:+.4f}')} ms/min "
            f"({fmt(lat['p99_fitted_rise_ms'], '{:+.2f}')} ms over the window; allowed "
            f"{fmt(lat['allowed_rise_ms'], '{:.2f}')}); max {fmt(lat['max_ms'], '{:.1f}')} ms.",
            f"- Throughput {fmt(v['deliveries_per_s'], '{:.0f}')} deliveries/s; server CPU "
            f"{fmt(v['server_cpu_us_per_delivery'], '{:.1f}')} us/delivery (mean of the "
            f"intervals); other processes {fmt(noise['other_processes_cpu_pct_mean'], '{:.0f}')} "
            f"% of a core on average, {fmt(noise['other_processes_cpu_pct_max'], '{:.0f}')} % at "
            f"most; steal at most {fmt(noise['steal_pct_max'], '{:.1f}')} %; the load generator "
            f"skipped {noise['loadgen_skipped_ticks']} speaker ticks in "
            f"{noise['intervals_with_skipped_ticks']} interval(s).",
        ]
    )
