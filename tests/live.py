"""Real server processes for tests: daphne or uvicorn nodes on 127.0.0.1, a real database.

Used by the tests that must see the product as clients do: real sockets, real HTTP,
several nodes sharing Redis and MySQL, nodes killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from rooms.ws.frames import MAX_MESSAGE_BYTES

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(kind: str, port: int) -> list[str]:
    """The documented command of each server (README, docs/operations.md); daphne gets
    its message size limit from voiceroom.asgi (realtime/servers/daphne.py)."""
    if kind == "daphne":
        return [
            str(BIN / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "voiceroom.asgi:application",
        ]
    if kind == "uvicorn":
        return [
            str(BIN / "uvicorn"),
            "voiceroom.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "realtime.servers.uvicorn:HttpToolsProtocol",
            "--ws",
            "realtime.servers.uvicorn:WebSocketProtocol",
            "--ws-per-message-deflate",
            "false",
            "--ws-ping-interval",
            "20",
            "--ws-ping-timeout",
            "20",
            "--lifespan",
            "off",
            "--ws-max-size",
            str(MAX_MESSAGE_BYTES),
            "--log-level",
            "warning",
        ]
    raise ValueError(kind)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "voiceroom.settings",
            "DJANGO_SECRET_KEY": "live-test-" + "k" * 40,
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_COOKIES": "0",
            "PYTHONUNBUFFERED": "1",
            # Every real-process test registers and signs in from 127.0.0.1, more often
            # than the contract's throttles allow one address; the throttles' own live
            # test (tests/voiceroom/test_live_throttles.py) turns them back on.
            "VOICEROOM_THROTTLES": "off",
        }
    )
    env.update(extra)
    return env


class Node:
    """One server process."""

    def __init__(
        self,
        kind: str,
        env: dict[str, str],
        port: int | None = None,
        args: tuple[str, ...] = (),
        argv: list[str] | None = None,
    ) -> None:
        self.kind = kind
        self.args = args  # appended to the server's command line (later options win)
        self.argv = argv  # a whole command line instead of server_command()
        self.port = port or free_port()
        self.env = env
        self.log = tempfile.NamedTemporaryFile(
            prefix=f"voiceroom-{kind}-", suffix=".log", delete=False
        )
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Node:
        self.proc = subprocess.Popen(
            [*(self.argv or server_command(self.kind, self.port)), *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.kind} did not answer /healthz:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        """SIGKILL: the node dies without closing anything."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def discard_log(self) -> None:
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                if self.env.get("PYTHONFAULTHANDLER"):
                    # Leave every thread's stack in the log, to see where it hung.
                    os.kill(self.proc.pid, signal.SIGABRT)
                    try:
                        self.proc.wait(2)
                    except subprocess.TimeoutExpired:
                        pass
                self.kill()


def migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stdout + done.stderr)


def database_for_processes() -> tuple[str, callable]:
    """A fresh database the server processes share; returns (DATABASE_URL, cleanup)."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("mysql"):
        import MySQLdb

        base, _, _ = url.rpartition("/")
        name = f"voiceroom_live_{secrets.token_hex(4)}"
        admin = _mysql_connect(url)
        admin.cursor().execute(
            f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        admin.close()

        def drop() -> None:
            conn = _mysql_connect(url)
            conn.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
            conn.close()

        del MySQLdb
        return f"{base}/{name}", drop
    folder = tempfile.mkdtemp(prefix="voiceroom-live-")
    return f"sqlite:///{folder}/live.sqlite3", lambda: None


def _mysql_connect(url: str):
    import environ
    import MySQLdb

    cfg = environ.Env.db_url_config(url)
    return MySQLdb.connect(
        host=cfg["HOST"] or "127.0.0.1",
        port=int(cfg["PORT"] or 3306),
        user=cfg["USER"],
        passwd=cfg["PASSWORD"] or "",
    )


class Api:
    """A tiny REST client (urllib) speaking the contract."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None

    def ok(self, method: str, path: str, body: dict | None = None) -> dict:
        status, data = self.call(method, path, body)
        assert 200 <= status < 300, (status, data)
        return data

    @classmethod
    def user(cls, base: str, name: str | None = None) -> tuple[Api, dict]:
        name = name or f"u{secrets.token_hex(4)}"
        data = cls(base).ok(
            "POST", "/api/auth/register", {"username": name, "password": "a-Long-pass-123"}
        )
        return cls(base, data["token"]), data["user"]


# -- private backing services, for the fault tests ----------------------------------------------


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


class RedisServer:
    """A redis-server of the test's own on a loopback port, that keeps nothing on disk, so
    stopping and starting it again is a Redis restart that lost everything."""

    BINARY = "/usr/bin/redis-server"

    def __init__(self, port: int | None = None, args: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.args = args  # appended to the command line (e.g. --replicaof HOST PORT)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                self.BINARY,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                "",
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_port(self.port, self.proc, "redis-server", timeout)
        return self

    def kill(self) -> None:
        """SIGKILL: the server dies at once; its clients' connections are reset."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: a hung Redis. Connections stay open; nothing is answered."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class SentinelSet:
    """A Redis master, one replica and three sentinels of the test's own, on loopback
    ports, configured in a temporary folder; quick to notice a dead master (down after
    `down_after_ms`) so a failover fits in a test."""

    BINARY = "/usr/bin/redis-sentinel"
    MASTER = "vrtest"

    def __init__(self, down_after_ms: int = 1000, failover_timeout_ms: int = 3000) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="voiceroom-sentinel-"))
        # Their own folder: a full resync writes an RDB file into the working directory.
        own = ("--dir", str(self.folder))
        self.master = RedisServer(args=own)
        self.replica = RedisServer(args=(*own, "--replicaof", "127.0.0.1", str(self.master.port)))
        self.ports = [free_port() for _ in range(3)]
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.sentinels: list[subprocess.Popen] = []

    @property
    def env(self) -> dict[str, str]:
        """What a node's environment needs to find the master through the sentinels."""
        return {
            "REDIS_URL": "redis://sentinel-managed/0",  # only the db number is used
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in self.ports),
            "REDIS_SENTINEL_MASTER": self.MASTER,
        }

    def start(self, timeout: float = 15) -> SentinelSet:
        self.master.start()
        self.replica.start()
        for port in self.ports:
            conf = self.folder / f"sentinel-{port}.conf"  # sentinels rewrite their file
            conf.write_text(
                f"port {port}\n"
                "bind 127.0.0.1\n"
                "daemonize no\n"
                f"dir {self.folder}\n"
                f"sentinel monitor {self.MASTER} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {self.MASTER} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.MASTER} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.MASTER} 1\n"
            )
            proc = subprocess.Popen(
                [self.BINARY, str(conf)],
                stdout=(self.folder / f"sentinel-{port}.log").open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.sentinels.append(proc)
            _wait_port(port, proc, "redis-sentinel", timeout)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                raise RuntimeError("the sentinels never saw the replica:\n" + self.output())
            time.sleep(0.1)
        return self

    def _ready(self) -> bool:
        """Every sentinel knows the replica and the others (so a failover can happen),
        and the replica is in sync with the master."""
        import redis

        try:
            for port in self.ports:
                s = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
                info = s.sentinel_master(self.MASTER)
                s.close()
                if int(info["num-slaves"]) < 1 or int(info["num-other-sentinels"]) < 2:
                    return False
            r = redis.Redis(port=self.replica.port, socket_timeout=1, decode_responses=True)
            ok = r.info("replication").get("master_link_status") == "up"
            r.close()
            return ok
        except redis.RedisError:
            return False

    def master_port(self) -> int:
        """The master's port as the sentinels name it now."""
        import redis

        s = redis.Redis(port=self.ports[0], socket_timeout=1, decode_responses=True)
        try:
            return int(s.sentinel_get_master_addr_by_name(self.MASTER)[1])
        finally:
            s.close()

    def output(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-2000:] for p in sorted(self.folder.glob("*.log"))
        )

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.replica.stop()
        self.master.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


class MariaDBServer:
    """A mariadbd of the test's own: data directory in a temporary folder, loopback port,
    no grant tables (nothing else can reach it). Starting it takes well under a second."""

    INSTALL = "/usr/bin/mariadb-install-db"
    BINARY = "/usr/sbin/mariadbd"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.folder = tempfile.mkdtemp(prefix="voiceroom-mariadb-")
        self.proc: subprocess.Popen | None = None
        done = subprocess.run(
            [
                self.INSTALL,
                "--no-defaults",
                "--auth-root-authentication-method=normal",
                f"--datadir={self.folder}/data",
                f"--user={_me()}",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise RuntimeError(done.stdout + done.stderr)

    def url(self, name: str) -> str:
        return f"mysql://root:@127.0.0.1:{self.port}/{name}"

    def start(self, timeout: float = 30) -> MariaDBServer:
        with open(f"{self.folder}/error.log", "ab") as log:
            self.proc = self._popen(log)
        _wait_port(self.port, self.proc, "mariadbd", timeout)
        return self

    def _popen(self, log) -> subprocess.Popen:
        return subprocess.Popen(
            [
                self.BINARY,
                "--no-defaults",
                f"--datadir={self.folder}/data",
                f"--socket={self.folder}/mysqld.sock",
                f"--pid-file={self.folder}/mysqld.pid",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--user={_me()}",
                "--skip-grant-tables",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class Nginx:
    """Debian's nginx running the REAL docker/nginx.conf on loopback: the upstream nodes
    and the listening address substituted, pid and temporary files in `folder`."""

    BINARY = "/usr/sbin/nginx"
    CONF = ROOT / "docker" / "nginx.conf"

    def __init__(
        self,
        upstream: str | dict[str, str],
        folder: Path,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.folder = folder
        # "127.0.0.1:PORT" standing for every node, or each node's by its compose name
        # ({"app1": "127.0.0.1:PORT", ...}: the /node/<id>/ prefixes reach distinct nodes).
        self.upstream = upstream
        self.log = folder / "nginx.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def render(self) -> str:
        text = self.CONF.read_text()

        def node(match: re.Match) -> str:
            up = self.upstream
            return f"server {up if isinstance(up, str) else up[match.group(1)]}"

        text, nodes = re.subn(r"server (app\d+):8000", node, text)
        text, listens = re.subn(
            r"listen 80 default_server;", f"listen 127.0.0.1:{self.port} default_server;", text
        )
        if not nodes or listens != 1:
            raise RuntimeError("docker/nginx.conf changed shape: update tests/live.py Nginx")
        temp = "".join(
            f"    {kind}_temp_path {self.folder}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        text = text.replace("http {\n", "http {\n" + temp, 1)
        head = f"pid {self.folder}/nginx.pid;\n"
        if os.geteuid() == 0:
            head += f"user {_me()};\n"  # workers as root's default, nobody, could not write here
        return head + text

    def start(self, timeout: float = 10) -> Nginx:
        conf = self.folder / "nginx.conf"
        conf.write_text(self.render())
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.BINARY,
                    "-p",
                    str(self.folder),
                    "-c",
                    str(conf),
                    "-e",
                    str(self.folder / "error.log"),
                    "-g",
                    "daemon off;",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_port(self.port, self.proc, "nginx", timeout)
        return self

    def output(self) -> str:
        logs = [self.log, self.folder / "error.log"]
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in logs if p.exists())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # the master stops its workers
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
