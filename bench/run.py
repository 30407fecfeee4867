"""One side-by-side benchmark run: the bare relay, then voiceroom, same machine, same load.

    python -m bench.run --scenario default                 # bare + uvicorn, Redis on
    python -m bench.run --scenario default --server both   # bare + uvicorn + daphne
    python -m bench.run --rooms 20 --no-redis
    python -m bench.run --ladder                           # 10, 20, 30 ... rooms
    python -m bench.run --scenario stalled --server both   # 1 listener per room stops reading
    python -m bench.run --scenario soak                    # 10 min at the default load
    python -m bench.run --scenario soak --duration 60 --warmup 20 --interval 10  # short
    python -m bench.run --recording 10 --no-bare   # each server twice: none, then 10 recording
    python -m bench.run --scenario placement    # 1 node vs 2 nodes with placement, 10 and 20 rooms
    python -m bench.run --server uvicorn,uvicorn@20   # per loop turn vs a 20 ms flush window

Servers are pinned to core 0 (`taskset -c 0`), the load generator to core 1. Every
figure that matters is a ratio to the bare relay of the same run ("x bare"). Results go
to bench/results/<timestamp>-<scenario>.json (gitignored) and a markdown table is
printed. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from bench import soak
from bench.report import cpu_model, fmt, md_table, write_json
from bench.rest import load_user_cache
from realtime.limits import MAX_MESSAGE_BYTES

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SERVER_CORE, LOADGEN_CORE = "0", "1"

SCENARIOS = {
    # rooms x members x speakers at fps: 1,000 frames in, 19,000 deliveries out per second.
    "default": {"rooms": 10, "members": 20, "speakers": 2, "fps": 50, "frame_bytes": 120,
                "duration": 20, "warmup": 5},
    # A quick check that everything works (not a measurement).
    "smoke": {"rooms": 2, "members": 5, "speakers": 1, "fps": 50, "frame_bytes": 120,
              "duration": 5, "warmup": 2},
    # Few big rooms: fan-out of 99 per frame.
    "big-rooms": {"rooms": 2, "members": 100, "speakers": 2, "fps": 50, "frame_bytes": 120,
                  "duration": 20, "warmup": 5},
    # One listener per room stops reading when the load starts. 4,000-byte frames send
    # ~400 KB/s towards each stalled socket, so the kernel's buffers (~4 MB on the server
    # side here: tcp_wmem max) fill within the warm-up; 1,000-byte ones took longer than the
    # run. Latency and loss are measured over the other listeners; /metrics and RSS around
    # the window.
    "stalled": {"rooms": 10, "members": 20, "speakers": 2, "fps": 50, "frame_bytes": 4000,
                "duration": 30, "warmup": 10, "stalled": 1},
    # The soak (issue 8): the default load for 10 minutes after a 1-minute warm-up, a
    # time-series row every 30 s (RSS, loss, latency, CPU, drops) and a verdict
    # (bench.soak). No bare relay unless --server none.
    "soak": {"rooms": 10, "members": 20, "speakers": 2, "fps": 50, "frame_bytes": 120,
             "duration": 600, "warmup": 60, "interval": 30},
    # Issue 14: at each of PLACEMENT_ROOMS, one uvicorn node, then two nodes with
    # placement (VOICEROOM_NODE_URL on each; the load generator follows ws_url), in one
    # run. "x 1 node" is the two nodes' summed CPU per delivery over the one node's.
    "placement": {"rooms": 10, "members": 20, "speakers": 2, "fps": 50, "frame_bytes": 120,
                  "duration": 20, "warmup": 5},
}  # fmt: skip
PLACEMENT_ROOMS = (10, 20)
PARAM_KEYS = ("rooms", "members", "speakers", "fps", "frame_bytes", "duration", "warmup",
              "stalled", "interval")  # fmt: skip
FLOAT_KEYS = ("duration", "warmup", "interval")


def log(msg: str) -> None:
    print(f"[bench.run] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: str, argv: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", core, *argv]
    return argv


def venv_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def wait_port(host: str, port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout:.0f} s")


def wait_healthz(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before /healthz answered")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url}/healthz did not answer 200 in {timeout:.0f} s ({last})")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


LOCK_PATH = Path(tempfile.gettempdir()) / "voiceroom-bench.lock"


@contextlib.contextmanager
def machine_lock(timeout: float):
    """One bench.run per machine at a time: two would share the pinned cores."""
    with LOCK_PATH.open("a+") as fh:
        deadline = time.monotonic() + timeout
        said = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"another bench.run still holds {LOCK_PATH}; gave up")
                if not said:
                    fh.seek(0)
                    log(f"waiting for another bench.run ({fh.read().strip() or '?'}) ...")
                    said = True
                time.sleep(1)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# `uvicorn` is the documented command (our WebSocket protocol, the relay's fast path);
# `uvicorn-asgi` is the same with uvicorn's own protocol (the relay's ASGI path, as
# before issue 17), to compare the two in one run.
UVICORN_WS = {
    "uvicorn": "realtime.servers.uvicorn:WebSocketProtocol",
    "uvicorn-asgi": "websockets-sansio",
}
SERVER_CHOICES = {
    "both": ["uvicorn", "daphne"],
    "none": [],
    "all": ["uvicorn", "uvicorn-asgi", "daphne"],
}


def flush_ms(server: str) -> str | None:
    """`uvicorn@N`: the documented uvicorn node with VOICEROOM_VOICE_FLUSH_MS=N."""
    name, at, ms = server.partition("@")
    return ms if at and name == "uvicorn" else None


def server_list(value: str) -> list[str]:
    """`--server`: uvicorn, uvicorn@N (flush window N ms), uvicorn-asgi, daphne, both, all,
    none, or a comma list."""
    if value in SERVER_CHOICES:
        return SERVER_CHOICES[value]
    names = value.split(",")
    for name in names:
        ms = flush_ms(name)
        if ms is not None:
            try:
                if not 0 <= float(ms) <= 100:
                    raise ValueError
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{name!r}: the flush window is 0 to 100 ms"
                ) from None
        elif name not in (*UVICORN_WS, "daphne"):
            raise argparse.ArgumentTypeError(f"unknown server {name!r}")
    return names


class Runner:
    def __init__(self, args: argparse.Namespace, params: dict) -> None:
        self.args = args
        self.params = params
        self.workdir = Path(tempfile.mkdtemp(prefix="voiceroom-bench-"))
        self.user_cache = str(self.workdir / "users.json")
        self.redis_url = None if args.no_redis else args.redis
        self.redis_pid = None
        self.database_url = args.database_url or f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        self.migrated = False
        self.env = dict(os.environ)
        self.env.update(
            {
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DJANGO_DEBUG": "0",
                "DATABASE_URL": self.database_url,
                "DJANGO_LOG_LEVEL": "WARNING",
                # Set-up registers and signs in hundreds of users from one address.
                "VOICEROOM_THROTTLES": "off",
                # ...and opens every socket from 127.0.0.1: no per-address socket limit.
                "VOICEROOM_MAX_SOCKETS_PER_ADDRESS": "0",
                "VOICEROOM_REDIS_PREFIX": f"vrbench{secrets.token_hex(4)}",
                # Recorded tracks (--recording) and report evidence stay in the workdir.
                "VOICEROOM_MEDIA_ROOT": str(self.workdir / "media"),
            }
        )
        self.env.pop("REDIS_URL", None)
        if self.redis_url:
            self.env["REDIS_URL"] = self.redis_url

    # -- set-up ------------------------------------------------------------------------

    def check_redis(self) -> None:
        if not self.redis_url:
            return
        try:
            import redis
        except ImportError:
            raise SystemExit("redis-py is missing; use --no-redis")
        try:
            info = redis.Redis.from_url(self.redis_url, socket_timeout=3).info("server")
        except redis.RedisError as exc:
            raise SystemExit(f"Redis at {self.redis_url} does not answer ({exc}); use --no-redis")
        host = urlsplit(self.redis_url).hostname
        if host in ("127.0.0.1", "localhost", "::1"):
            self.redis_pid = int(info["process_id"])
        log(f"Redis {info.get('redis_version')} pid {self.redis_pid} at {self.redis_url}")

    def cleanup_redis(self) -> None:
        """Delete the keys this run's prefix left (bounded), never anything else."""
        if not self.redis_url:
            return
        try:
            import redis

            r = redis.Redis.from_url(self.redis_url, socket_timeout=3)
            prefix = self.env["VOICEROOM_REDIS_PREFIX"]
            keys = []
            for n, key in enumerate(r.scan_iter(match=f"*{prefix}*", count=1000)):
                keys.append(key)
                if n > 200_000:
                    break
            for i in range(0, len(keys), 1000):
                r.delete(*keys[i : i + 1000])
        except Exception as exc:  # cleanup is best effort
            log(f"Redis cleanup failed: {exc}")

    def migrate(self) -> None:
        if self.migrated:
            return
        log(f"migrate ({self.database_url})")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=self.env,
            check=True,
            timeout=300,
        )
        self.migrated = True

    def seed_users(self, needed: int) -> None:
        """Enough users in the cache for the load generator, made in bulk in the database
        (bench.seed) rather than registered over REST, one password hash each; unless
        --register-over-rest. If seeding fails, the load generator registers them."""
        have = len(load_user_cache(self.user_cache))
        if self.args.register_over_rest or needed <= have:
            return
        log(f"seeding {needed - have} users into the database (bench.seed)")
        try:
            subprocess.run(
                [sys.executable, "-m", "bench.seed", "--count", str(needed - have),
                 "--cache", self.user_cache],
                cwd=ROOT, env=self.env, check=True, timeout=300,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            log(f"seeding failed ({exc}); the load generator registers over REST")

    # -- one loadgen run ---------------------------------------------------------------

    def loadgen(
        self,
        target: str,
        urls: list[str],
        pids: list[int],
        label: str,
        rooms: int,
        record_rooms: int = 0,
    ):
        out = self.workdir / f"{label}-{rooms}.json"
        p = self.params
        if target == "voiceroom":
            self.seed_users(rooms * p["members"])
        argv = [
            sys.executable, "-m", "bench.loadgen", "--target", target,
            "--rooms", str(rooms), "--members", str(p["members"]),
            "--speakers", str(p["speakers"]), "--fps", str(p["fps"]),
            "--frame-bytes", str(p["frame_bytes"]), "--duration", str(p["duration"]),
            "--warmup", str(p["warmup"]), "--json", str(out), "--label", label,
            "--user-cache", self.user_cache, "--stalled", str(p.get("stalled", 0)),
            "--interval", str(p.get("interval", 0)),
            # SQLite refuses concurrent writers ("database is locked"): one at a time.
            "--setup-concurrency", "1" if self.database_url.startswith("sqlite") else "4",
        ]  # fmt: skip
        if record_rooms:
            argv += ["--record-rooms", str(record_rooms)]
        for u in urls:
            argv += ["--url", u]
        for pid in pids:
            argv += ["--server-pid", str(pid)]
        if self.redis_pid and target == "voiceroom":
            argv += ["--redis-pid", str(self.redis_pid)]
        users = rooms * p["members"]
        # (+10 %: a long run's percentiles are sorted at the end)
        timeout = 180 + users * 1.0 + (p["warmup"] + p["duration"]) * 1.1
        proc = subprocess.run(pinned(LOADGEN_CORE, argv), cwd=ROOT, timeout=timeout)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"loadgen failed with exit code {proc.returncode}")
        res = json.loads(out.read_text())
        res["server"] = label
        return res

    @contextlib.contextmanager
    def bare_node(self):
        """The bare relay on the server core; yields (proc, url)."""
        port = free_port()
        logf = self.workdir / "bare.log"
        argv = [
            sys.executable,
            "-m",
            "bench.bare_relay",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        with logf.open("ab") as fh:
            proc = subprocess.Popen(
                pinned(SERVER_CORE, argv), cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT
            )
        try:
            wait_port("127.0.0.1", port, proc, 20)
            yield proc, f"http://127.0.0.1:{port}"
        finally:
            stop(proc)

    def run_bare(self, rooms: int) -> dict:
        with self.bare_node() as (proc, url):
            return self.loadgen("bare", [url], [proc.pid], "bare", rooms)

    def server_argv(self, server: str, port: int) -> list[str]:
        if flush_ms(server) is not None:
            server = "uvicorn"
        if server in UVICORN_WS:
            return [
                venv_bin("uvicorn"), "voiceroom.asgi:application", "--host", "127.0.0.1",
                "--port", str(port), "--loop", "uvloop",
                "--http", "realtime.servers.uvicorn:HttpToolsProtocol",
                "--ws", UVICORN_WS[server], "--ws-per-message-deflate", "false",
                "--ws-ping-interval", "20", "--ws-ping-timeout", "20",
                "--lifespan", "off", "--ws-max-size", str(MAX_MESSAGE_BYTES),
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
        if server == "daphne":
            return [
                venv_bin("daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "voiceroom.asgi:application",
            ]
        raise ValueError(server)

    @contextlib.contextmanager
    def server_nodes(self, server: str, nodes: int, placement: bool = False):
        """`nodes` voiceroom nodes on the server core, /healthz answered; yields (procs, urls).

        With `placement`, each node gets its own URL as VOICEROOM_NODE_URL, so rooms get
        a home node and the joins' ws_url names it. On an error the tail of the server
        log is printed.
        """
        self.migrate()
        procs: list[subprocess.Popen] = []
        urls: list[str] = []
        logf = self.log_path(server)
        try:
            with logf.open("ab") as fh:
                for _ in range(nodes):
                    port = free_port()
                    env = dict(self.env)
                    ms = flush_ms(server)
                    if ms is not None:
                        env["VOICEROOM_VOICE_FLUSH_MS"] = ms
                    if placement:
                        env["VOICEROOM_NODE_URL"] = f"http://127.0.0.1:{port}"
                    procs.append(
                        subprocess.Popen(
                            pinned(SERVER_CORE, self.server_argv(server, port)),
                            cwd=ROOT,
                            env=env,
                            stdout=fh,
                            stderr=subprocess.STDOUT,
                        )
                    )
                    urls.append(f"http://127.0.0.1:{port}")
            for proc, url in zip(procs, urls, strict=True):
                wait_healthz(url, proc, 90)
            if placement:
                time.sleep(2.5)  # every node has heartbeaten (from its first request) twice
            yield procs, urls
        except Exception:
            log(f"{server} log tail ({logf}):\n{tail(logf)}")
            raise
        finally:
            for proc in procs:
                stop(proc)

    def log_path(self, server: str) -> Path:
        return self.workdir / f"{server}.log"

    def run_server(
        self,
        server: str,
        rooms: int,
        record_rooms: int = 0,
        nodes: int | None = None,
        placement: bool = False,
        label: str | None = None,
    ) -> dict:
        logf = self.log_path(server)
        offset = logf.stat().st_size if logf.exists() else 0
        count = self.args.nodes if nodes is None else nodes
        if label is None:
            label = f"{server}+rec{record_rooms}" if record_rooms else server
        with self.server_nodes(server, count, placement) as (procs, urls):
            res = self.loadgen(
                "voiceroom", urls, [p.pid for p in procs], label, rooms, record_rooms
            )
        res["server_log"] = log_problems(logf, offset)
        res["nodes"] = count
        res["placement"] = placement
        return res


def git_commit() -> str | None:
    """The checked-out commit, with "+dirty" when tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout

    try:
        head = git("rev-parse", "--short", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+dirty" if dirty.strip() else "")) or None


def log_problems(path: Path, offset: int = 0) -> dict:
    """Error lines and tracebacks the server logged during one run (from byte `offset`)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return {"lines": 0, "problems": 0, "first": []}
    lines = text.splitlines()
    bad = [ln for ln in lines if "Traceback" in ln or "ERROR" in ln or "CRITICAL" in ln]
    warn = [ln for ln in lines if " WARNING " in ln]  # e.g. "event loop 205 ms late: shedding"
    return {"lines": len(lines), "problems": len(bad), "first": [b[:300] for b in bad[:5]],
            "warnings": len(warn), "first_warnings": [w[:300] for w in warn[:20]]}  # fmt: skip


def _failed(r: dict) -> list[str]:
    return [str(r["rooms"]), r["server"], f"failed: {r['error'][:80]}"]


def table(rows: list[dict]) -> str:
    cells = []
    for r in rows:
        if "error" in r:
            cells.append(_failed(r))
            continue
        lat = r["latency_ms"]
        cells.append([
            str(r["params"]["rooms"]),
            r["server"],
            fmt(r["loss_pct"], "{:.2f}"),
            fmt(lat["p50"], "{:.2f}"),
            fmt(lat["p99"], "{:.2f}"),
            fmt(lat["max"], "{:.1f}"),
            fmt(r["deliveries_per_s"], "{:.0f}"),
            fmt(r["server_cpu_us_per_delivery"]),
            fmt(r.get("server_sys_us_per_delivery")),
            fmt(r.get("x_bare"), "{:.2f}"),
            fmt(r["redis_cpu_us_per_delivery"]),
            fmt(r["loadgen_cpu_pct"], "{:.0f}"),
            fmt(r.get("x_one_node"), "{:.2f}"),
            fmt(r.get("rooms_split"), "{:.0f}"),
        ])  # fmt: skip
    columns = ["rooms", "server", "loss %", "p50 ms", "p99 ms", "max ms", "deliveries/s",
               "server CPU us/delivery", "of which kernel", "x bare",
               "redis CPU us/delivery", "loadgen CPU %", "x 1 node", "rooms split"]  # fmt: skip
    return md_table(columns, cells)


def stalled_table(rows: list[dict]) -> str:
    """The stalled-listener view: the others' latency and loss, drops, server memory."""
    cells = []
    for r in rows:
        if "error" in r:
            cells.append(_failed(r))
            continue
        lat, st = r["latency_ms"], r.get("stalled") or {}
        pr = r.get("probes") or {}
        rss = pr.get("server_rss_mib") or {}
        closed = [c[0] for c in st.get("server_closed") or []]
        when = f"{len(closed)}" + (f" ({min(closed):.0f}-{max(closed):.0f})" if closed else "")
        cells.append([
            str(r["params"]["rooms"]),
            r["server"],
            str(st.get("sockets", 0)),
            fmt(r["loss_pct"], "{:.2f}"),
            fmt(lat["p50"], "{:.2f}"),
            fmt(lat["p99"], "{:.2f}"),
            fmt(lat["max"], "{:.1f}"),
            fmt(pr.get("dropped_backlog_window"), "{:.0f}"),
            str(st.get("frames_for_stalled_in_window", "-")),
            fmt(pr.get("dropped_backlog_warmup"), "{:.0f}"),
            fmt(rss.get("load_start")),
            fmt(rss.get("window_start")),
            fmt(rss.get("window_end")),
            when,
            str(st.get("frames_for_stalled_total", "-")),
            str(st.get("frames_read_after_resume", "-")),
            fmt(st.get("frames_unaccounted"), "{:.0f}"),
            fmt(r["server_cpu_us_per_delivery"]),
            fmt(r.get("x_bare"), "{:.2f}"),
        ])  # fmt: skip
    columns = ["rooms", "server", "stalled", "others' loss %", "p50 ms", "p99 ms", "max ms",
               "dropped_backlog (window)", "frames for stalled (window)",
               "dropped_backlog (warm-up)", "RSS MiB load start", "RSS MiB window start",
               "RSS MiB window end", "stalled closed by server (s after stall)",
               "frames for stalled (run)", "read after resume", "neither read nor counted",
               "server CPU us/delivery", "x bare"]  # fmt: skip
    return md_table(columns, cells)


def recording_table(rows: list[dict]) -> str:
    """Each server with N rooms recording against the same server without, same run."""
    cells = []
    plain = {}
    for r in rows:
        if "error" in r or r["server"] == "bare":
            continue
        base = r["server"].split("+rec")[0]
        if not r.get("record_rooms"):
            plain[base] = r
            continue
        none = plain.get(base)
        if none is None:
            continue

        def ratio(a, b):
            return round(a / b, 2) if a is not None and b else None

        cpu_n, cpu_r = none["server_cpu_us_per_delivery"], r["server_cpu_us_per_delivery"]
        p50_n, p50_r = none["latency_ms"]["p50"], r["latency_ms"]["p50"]
        p99_n, p99_r = none["latency_ms"]["p99"], r["latency_ms"]["p99"]
        cells.append([
            base,
            str(r["record_rooms"]),
            fmt(cpu_n), fmt(cpu_r), fmt(ratio(cpu_r, cpu_n), "{:.2f}"),
            fmt(p50_n, "{:.2f}"), fmt(p50_r, "{:.2f}"), fmt(ratio(p50_r, p50_n), "{:.2f}"),
            fmt(p99_n, "{:.2f}"), fmt(p99_r, "{:.2f}"), fmt(ratio(p99_r, p99_n), "{:.2f}"),
            fmt(r["loss_pct"], "{:.2f}"),
        ])  # fmt: skip
    columns = ["server", "rooms recording", "CPU us/delivery none", "recording", "ratio",
               "p50 ms none", "recording", "ratio", "p99 ms none", "recording", "ratio",
               "loss % recording"]  # fmt: skip
    return md_table(columns, cells)


def _x_bare(res: dict, bare: dict | None) -> None:
    if bare and res.get("server_cpu_us_per_delivery") and bare.get("server_cpu_us_per_delivery"):
        res["x_bare"] = round(
            res["server_cpu_us_per_delivery"] / bare["server_cpu_us_per_delivery"], 2
        )


def placement_pair(runner: Runner, server: str, rooms: int, bare: dict | None) -> list[dict]:
    """One node, then two nodes with placement, at the same load: the two nodes' summed
    CPU per delivery over the one node's is "x 1 node" (issue 14: at most 1.1)."""
    out = []
    for nodes, placement, label in (
        (1, False, f"{server} 1 node"),
        (2, True, f"{server} 2 nodes placed"),
    ):
        log(f"--- {rooms} rooms: {label}")
        try:
            res = runner.run_server(server, rooms, nodes=nodes, placement=placement, label=label)
        except Exception as exc:
            log(f"{label} failed: {exc}")
            res = {"server": label, "rooms": rooms, "error": str(exc)}
        _x_bare(res, bare)
        out.append(res)
    one, two = out
    if one.get("server_cpu_us_per_delivery") and two.get("server_cpu_us_per_delivery"):
        two["x_one_node"] = round(
            two["server_cpu_us_per_delivery"] / one["server_cpu_us_per_delivery"], 2
        )
        one["x_one_node"] = 1.0
    return out


def passed(res: dict, max_p99: float, max_loss: float) -> bool:
    if "error" in res or res.get("loss_pct") is None:
        return False
    p99 = res["latency_ms"]["p99"]
    return p99 is not None and p99 <= max_p99 and res["loss_pct"] <= max_loss


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="default")
    for key in PARAM_KEYS:
        name = key.replace("_", "-")
        p.add_argument(f"--{name}", type=float if key in FLOAT_KEYS else int)
    p.add_argument("--server", type=server_list, default="uvicorn",
                   help="voiceroom server(s) to measure after the bare relay: uvicorn, "
                   "uvicorn@N (with a voice flush window of N ms), uvicorn-asgi "
                   "(uvicorn's own WebSocket protocol), daphne, both, all, none, or a "
                   "comma list")  # fmt: skip
    p.add_argument("--nodes", type=int, default=1, help="voiceroom nodes (all on core 0)")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    p.add_argument("--no-redis", action="store_true", help="embedded in-process layer")
    p.add_argument("--database-url", default=None, help="default: fresh SQLite in a temp dir")
    p.add_argument("--no-bare", action="store_true", help="skip the bare relay (no x bare)")
    p.add_argument("--ladder", action="store_true", help="10, 20, 30 ... rooms until it fails")
    p.add_argument("--ladder-step", type=int, default=10)
    p.add_argument("--ladder-max", type=int, default=100)
    p.add_argument("--max-p99-ms", type=float, default=100.0)
    p.add_argument("--max-loss-pct", type=float, default=1.0)
    p.add_argument("--keep-workdir", action="store_true")
    p.add_argument("--register-over-rest", action="store_true",
                   help="register the load's users over the REST API, one password "
                   "hash each (minutes for hundreds), instead of seeding them in bulk")  # fmt: skip
    p.add_argument("--recording", type=int, default=0, metavar="N",
                   help="run each server twice, without recording and with N rooms "
                        "recording, and compare the two (issue 16)")  # fmt: skip
    p.add_argument("--lock-timeout", type=float, default=1800.0,
                   help="seconds to wait for another bench.run on this machine")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with machine_lock(args.lock_timeout):
        return _main(args, argv)


def _main(args: argparse.Namespace, argv: list[str] | None) -> int:
    params = {"stalled": 0, "interval": 0, **SCENARIOS[args.scenario]}
    for key in PARAM_KEYS:
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    servers = list(args.server)
    if args.scenario == "soak" and servers:
        args.no_bare = True  # a soak of the bare relay only with --server none
    if (os.cpu_count() or 1) < 2:
        log("WARNING: fewer than 2 cores: server and load generator share one")
    runner = Runner(args, params)
    if servers:
        runner.check_redis()
    started = datetime.now(UTC)
    commit = git_commit()  # at the start: files edited during a long run do not count
    steps = (
        list(range(args.ladder_step, args.ladder_max + 1, args.ladder_step))
        if args.ladder
        else [params["rooms"]]
    )
    if args.scenario == "placement" and not args.ladder and args.rooms is None:
        steps = list(PLACEMENT_ROOMS)
        if not runner.redis_url:
            raise SystemExit("the placement scenario needs Redis (placement lives there)")
    rows: list[dict] = []
    active = list(servers)
    try:
        for rooms in steps:
            bare = None
            if not args.no_bare:
                log(f"--- {rooms} rooms: bare relay")
                try:
                    bare = runner.run_bare(rooms)
                    bare["x_bare"] = 1.0
                    rows.append(bare)
                except Exception as exc:
                    log(f"bare relay failed: {exc}")
                    rows.append({"server": "bare", "rooms": rooms, "error": str(exc)})
            variants = [(server, 0) for server in active]
            if args.recording:
                variants = [
                    (server, rec) for server in active for rec in (0, min(args.recording, rooms))
                ]
            for server, record_rooms in variants:
                if args.scenario == "placement":
                    if not record_rooms:
                        rows += placement_pair(runner, server, rooms, bare)
                    continue
                log(f"--- {rooms} rooms: {server}, {record_rooms} recording")
                try:
                    res = runner.run_server(server, rooms, record_rooms)
                except Exception as exc:
                    log(f"{server} failed: {exc}")
                    res = {"server": server, "rooms": rooms, "error": str(exc)}
                res["record_rooms"] = record_rooms
                _x_bare(res, bare)
                rows.append(res)
                if (
                    args.ladder
                    and server in active
                    and not passed(res, args.max_p99_ms, args.max_loss_pct)
                ):
                    log(f"{server} stops at {rooms} rooms")
                    active.remove(server)
            if args.ladder and servers and not active:
                break
            if (
                args.ladder
                and not servers
                and bare
                and not passed(bare, args.max_p99_ms, args.max_loss_pct)
            ):
                break
    finally:
        runner.cleanup_redis()
        if not args.keep_workdir:
            shutil.rmtree(runner.workdir, ignore_errors=True)
    md = table(rows)
    if args.recording:
        md += "\n\n" + recording_table(rows)
    if params.get("stalled"):
        md += "\n\n" + stalled_table(rows)
    for r in rows:
        if r.get("timeseries"):
            md += f"\n\n{r['server']}, one row per {params['interval']:g} s (t: seconds from "
            md += "the window start):\n\n" + soak.table(r["timeseries"]["rows"])
            md += "\n\n" + soak.summary(r["soak"])
    summary = {
        "started": started.isoformat(timespec="seconds"),
        "scenario": args.scenario,
        "params": params,
        "servers": servers,
        "nodes": args.nodes,
        "redis": runner.redis_url,
        "database": "sqlite (temp)" if not args.database_url else "given",
        "ladder": args.ladder,
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "commit": commit,
        "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "table_md": md,
        "runs": rows,
    }
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}-{args.scenario}{'-ladder' if args.ladder else ''}.json"
    write_json(str(out), summary)
    print(md)
    print(f"\nresults: {out.relative_to(ROOT)}")
    for r in rows:
        for w in r.get("warnings", []):
            print(f"WARNING ({r['server']}, {r['params']['rooms']} rooms): {w}")
        problems = (r.get("server_log") or {}).get("problems")
        if problems:
            first = r["server_log"]["first"][0]
            print(f"WARNING ({r['server']}): the server logged {problems} error line(s): {first}")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
