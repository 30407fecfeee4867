"""What the load generator reads from outside its own counters: the servers' CPU time,
RSS and /metrics, at named moments (Probe), as a time series (the soak) and, for stalled
listeners, the kernel's view of their sockets."""

from __future__ import annotations

import asyncio
import http.client
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import psutil

from bench import soak
from bench.client import BenchClient, Stats
from bench.config import LoadConfig
from bench.wsclient import CLOSED, perf_ns


def process_cpu_split(pid: int) -> tuple[float, float]:
    """Whole-process CPU seconds as (user, system): reaped children and live descendants
    included. System time is the kernel's work for the process (its reads, writes,
    `epoll` and the TCP and loopback delivery they do), which no user-space change
    removes except by making fewer system calls."""
    proc = psutil.Process(pid)
    t = proc.cpu_times()
    user, system = t.user + t.children_user, t.system + t.children_system
    try:
        for child in proc.children(recursive=True):
            try:
                ct = child.cpu_times()
                user += ct.user
                system += ct.system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return user, system


def process_cpu(pid: int) -> float:
    """Whole-process CPU seconds: user + sys, reaped children, and live descendants."""
    return sum(process_cpu_split(pid))


def process_rss(pid: int) -> int:
    """Resident set size in bytes of a process and all of its live descendants."""
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    try:
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def servers_rss(pids: list[int]) -> int | None:
    """Summed RSS (bytes) of the server processes, children included; None if one is gone."""
    try:
        return sum(process_rss(pid) for pid in pids) if pids else None
    except psutil.Error:
        return None


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format -> {"name{labels}": value}; comments and bad lines skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "}" in line:
            cut = line.rindex("}") + 1
            name, rest = line[:cut], line[cut:].split()
        else:
            name, *rest = line.split()
        try:
            out[name] = float(rest[0])
        except (IndexError, ValueError):
            continue
    return out


def scrape_metrics(urls: list[str], timeout: float = 5.0) -> dict[str, float] | None:
    """GET /metrics on every node and add the samples up; None if a node does not answer."""
    total: dict[str, float] = {}
    for url in urls:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80,
                                          timeout=timeout)  # fmt: skip
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            raw = resp.read()
            if resp.status != 200:
                return None
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()
        for name, value in parse_metrics(raw.decode("utf-8", "replace")).items():
            total[name] = total.get(name, 0.0) + value
    return total


def sample_cpu(cfg: LoadConfig, me: psutil.Process) -> dict:
    t = me.cpu_times()
    sys_t = psutil.cpu_times()
    busy = (
        sys_t.user
        + sys_t.system
        + sum(getattr(sys_t, name, 0.0) for name in ("nice", "irq", "softirq"))
    )
    sample: dict[str, Any] = {
        "self": t.user + t.system,
        "server": {},
        "server_sys": {},
        "redis": None,
        "machine_busy": busy,
    }
    for pid in cfg.server_pids:
        try:
            user, system = process_cpu_split(pid)
            sample["server"][pid] = user + system
            sample["server_sys"][pid] = system
        except psutil.Error:
            sample["server"][pid] = None
            sample["server_sys"][pid] = None
    if cfg.redis_pid:
        try:
            sample["redis"] = process_cpu(cfg.redis_pid)
        except psutil.Error:
            sample["redis"] = None
    return sample


async def sample_series(
    cfg: LoadConfig, stats: Stats, me: psutil.Process, pool, start_ns: int, w0: int, out: list
) -> None:
    """Snapshots for the time series (bench.soak), at the boundaries `soak.marks` gives:
    every cfg.interval seconds through the warm-up, from the window start (w0) on, and
    at the window end. Cheap on the loop: counters and psutil here, /metrics in a thread;
    percentiles are computed after the run."""
    loop = asyncio.get_running_loop()
    warmup_s = (w0 - start_ns) / 1e9
    for t in soak.marks(warmup_s, cfg.duration, cfg.interval):
        due = start_ns + round(t * 1e9) if t < warmup_s else w0 + round((t - warmup_s) * 1e9)
        await asyncio.sleep(max(0.0, (due - perf_ns()) / 1e9))
        now = perf_ns()
        snap: dict[str, Any] = {
            "t_s": (now - start_ns) / 1e9,
            "due_s": t,
            "recv": stats.recv,
            "gap_frames": stats.gap_frames,
            "lat_n": len(stats.lat),
            "sent": stats.sent,
            "skipped_ticks": stats.skipped_ticks,
            "utc": datetime.now(UTC).isoformat(timespec="seconds"),
            # CPU time the hypervisor gave to other guests (all CPUs): a VM's hidden noise.
            "steal": getattr(psutil.cpu_times(), "steal", None),
        }
        cpu = sample_cpu(cfg, me)
        server = list(cpu["server"].values())
        snap["cpu_self"] = cpu["self"]
        snap["cpu_server"] = sum(server) if server and None not in server else None
        snap["cpu_redis"] = cpu["redis"]
        snap["machine_busy"] = cpu["machine_busy"]
        rss = servers_rss(cfg.server_pids)
        snap["rss_mib"] = None if rss is None else round(rss / 2**20, 2)
        snap["loadgen_rss_mib"] = round(me.memory_info().rss / 2**20, 2)
        snap["metrics"] = None
        if cfg.want_metrics():
            m = await loop.run_in_executor(pool, scrape_metrics, cfg.urls)
            if m is not None:
                snap["metrics"] = {k: v for k, v in m.items() if k.startswith("voiceroom_")}
        out.append(snap)


class Probe:
    """Server RSS and /metrics at named moments of the run (window start and end ...)."""

    def __init__(self, cfg: LoadConfig, pool, stalled: list[BenchClient]) -> None:
        self.cfg = cfg
        self.pool = pool
        self.stalled = stalled
        self.rss: dict[str, int | None] = {}
        self.queued: dict[str, int] = {}
        self.metrics: dict[str, dict[str, float] | None] = {}

    async def sample(self, name: str) -> None:
        self.rss[name] = servers_rss(self.cfg.server_pids)
        if self.stalled:
            self.queued[name] = sum(c.queued_bytes() for c in self.stalled)
        if self.cfg.want_metrics():
            loop = asyncio.get_running_loop()
            self.metrics[name] = await loop.run_in_executor(
                self.pool, scrape_metrics, self.cfg.urls
            )

    def delta(self, a: str, b: str) -> dict[str, float] | None:
        m0, m1 = self.metrics.get(a), self.metrics.get(b)
        if m0 is None or m1 is None:
            return None
        return {
            k: m1[k] - m0.get(k, 0.0)
            for k in sorted(m1)
            if k.startswith("voiceroom_voice_") and k.endswith("_total")
        }

    def report(self) -> dict:
        mib = {k: None if v is None else round(v / 2**20, 1) for k, v in self.rss.items()}
        window = self.delta("window_start", "window_end")
        out: dict[str, Any] = {
            "server_rss_mib": mib,
            # Bytes the kernel holds, unread, at the stalled listeners (client side).
            "stalled_client_queued_kib": {k: round(v / 1024) for k, v in self.queued.items()},
            "metrics": None,
            "dropped_backlog_window": None,
            "dropped_backlog_warmup": None,
        }
        if self.cfg.want_metrics():
            warmup = self.delta("load_start", "window_start")
            out["metrics"] = {
                "warmup_delta": warmup,
                "window_delta": window,
                "sockets_local": {
                    k: (m or {}).get("voiceroom_sockets_local") for k, m in self.metrics.items()
                },
            }
            key = "voiceroom_voice_dropped_backlog_total"
            out["dropped_backlog_window"] = None if window is None else window.get(key)
            out["dropped_backlog_warmup"] = None if warmup is None else warmup.get(key)
            if "end" in self.metrics:
                run = self.delta("load_start", "end")
                out["metrics"]["run_delta"] = run
                out["dropped_backlog_run"] = None if run is None else run.get(key)
        return out


async def watch_stalled(
    cfg: LoadConfig, pool, stalled: list[BenchClient], start_ns: int, timeline: list
) -> None:
    """While listeners are stalled: has the server closed one (the kernel's TCP state,
    every 0.5 s)? And once a second a timeline row: seconds since the stall, the servers'
    RSS (MiB), their dropped_backlog and local sockets (/metrics), what the stalled
    listeners' kernel holds unread (KiB)."""
    loop = asyncio.get_running_loop()
    tick = 0
    while True:
        for c in stalled:
            if c.peer_closed_after_s is None:
                state = c.tcp_state()
                if state not in (0, 1):  # no longer ESTABLISHED: the server closed it
                    c.peer_closed_after_s = round((perf_ns() - start_ns) / 1e9, 1)
                    c.peer_closed_at = datetime.now(UTC).isoformat(timespec="milliseconds")
                    c.peer_closed_state = state
        if tick % 2 == 0:
            t = round((perf_ns() - start_ns) / 1e9, 1)
            rss = servers_rss(cfg.server_pids)
            queued = sum(c.queued_bytes() for c in stalled)
            dropped = sockets = None
            if cfg.want_metrics():
                m = await loop.run_in_executor(pool, scrape_metrics, cfg.urls)
                if m is not None:
                    dropped = m.get("voiceroom_voice_dropped_backlog_total")
                    sockets = m.get("voiceroom_sockets_local")
            mib = None if rss is None else round(rss / 2**20, 1)
            timeline.append([t, mib, dropped, sockets, round(queued / 1024)])
        tick += 1
        await asyncio.sleep(0.5)


async def drain_stalled(cfg: LoadConfig, stats: Stats, stalled: list[BenchClient]) -> dict:
    """After the report: let the stalled listeners read again, see what reaches them."""
    closed = sum(1 for c in stalled if c.state == CLOSED)
    peer_closed = sorted(
        (c.peer_closed_after_s, c.peer_closed_at, c.peer_closed_state)
        for c in stalled
        if c.peer_closed_after_s is not None
    )
    queued_max = [c.queued_max for c in stalled]
    before = stats.stalled_recv
    for c in stalled:
        c.unstall()
    last, quiet_since = stats.stalled_recv, time.monotonic()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 0.5:
        await asyncio.sleep(0.1)
        if stats.stalled_recv != last:
            last, quiet_since = stats.stalled_recv, time.monotonic()
    return {
        "frames_read_while_stalled": before,
        "frames_read_after_resume": stats.stalled_recv - before,
        "closed_before_resume": closed,
        # Seen in the kernel while stalled: (seconds after the stall, UTC time, TCP state).
        "server_closed": [list(x) for x in peer_closed],
        "client_queued_max_kib": round(max(queued_max) / 1024) if queued_max else None,
        "closed_after_resume": sum(1 for c in stalled if c.state == CLOSED),
        "close_codes": sorted({c.close_code for c in stalled if c.close_code is not None}),
    }
