"""Faults, with real processes: Redis stopped and restarted, MariaDB stopped, nodes restarted.

Every test starts its own uvicorn (or daphne) nodes and, for the dependency it takes away,
its own private server on a loopback port (redis-server without persistence, mariadbd in
a temporary data directory), so the shared services are never touched. The tests are
marked like the other cluster tests (`redis`, `mysql`) for the service they do not bring
themselves; a missing redis-server or mariadbd binary skips them with the reason shown,
and fails them under VOICEROOM_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.live import Api, MariaDBServer, Node, RedisServer, base_env, migrate
from tests.rooms.test_live_nodes import metric

pytestmark = [pytest.mark.processes]

REQUIRE = os.environ.get("VOICEROOM_REQUIRE_SERVICES") == "1"

# Short clocks so that a fault and its recovery fit in seconds.
FAST = {
    "VOICEROOM_RESUME_WINDOW_S": "6",
    "VOICEROOM_NODE_HEARTBEAT_S": "0.5",
    "VOICEROOM_NODE_DEAD_AFTER_S": "2",
    "DJANGO_LOG_LEVEL": "WARNING",
    "PYTHONFAULTHANDLER": "1",  # a node that hangs on stop shows where (tests.live.Node.stop)
}


def need_binary(path: str) -> None:
    if os.access(path, os.X_OK):
        return
    reason = f"needs {path} (apt-get install redis-server mariadb-server)"
    if REQUIRE:
        pytest.fail(f"VOICEROOM_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def fault_env(**extra: str) -> dict[str, str]:
    return base_env(**{"VOICEROOM_REDIS_PREFIX": f"f{secrets.token_hex(3)}", **FAST, **extra})


class Nodes:
    """Nodes started by one test; all stopped (and their logs removed) at teardown."""

    def __init__(self) -> None:
        self.all: list[Node] = []

    def start(self, kind: str, env: dict[str, str], port: int | None = None) -> Node:
        node = Node(kind, env, port)
        self.all.append(node)
        return node.start()

    def close(self) -> None:
        for node in self.all:
            node.stop()
            print(f"--- {node.kind} :{node.port} ---\n{node.output()}")  # shown on failure
            node.discard_log()


@pytest.fixture
def nodes():
    started = Nodes()
    yield started
    started.close()


@pytest.fixture
def private_redis():
    need_binary(RedisServer.BINARY)
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def private_mariadb():
    need_binary(MariaDBServer.BINARY)
    need_binary(MariaDBServer.INSTALL)
    server = MariaDBServer().start()
    yield server
    server.remove()


# -- a client that remembers every event it saw ------------------------------------------------


class Client:
    def __init__(self, ws, welcome: dict, user: dict) -> None:
        self.ws = ws
        self.welcome = welcome
        self.user = user
        self.id = user["id"]
        self.seen: list[dict] = []

    @property
    def token(self) -> str:
        return self.welcome["session"]["resume_token"]

    async def event(self, kind: str, timeout: float = 5, where=None) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.ws.recv()
                if isinstance(raw, str):
                    event = json.loads(raw)
                    self.seen.append(event)
                    if event["type"] == kind and (where is None or where(event)):
                        return event

    async def frame_with(self, payload: bytes, timeout: float) -> bytes:
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.ws.recv()
                if isinstance(raw, str):
                    self.seen.append(json.loads(raw))
                elif raw[9:] == payload:
                    return raw

    async def drain(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                while True:
                    raw = await self.ws.recv()
                    if isinstance(raw, str):
                        self.seen.append(json.loads(raw))
        except TimeoutError:
            pass

    async def closed(self, timeout: float) -> int:
        """Read until the server closes the socket; its close code."""
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        return self.ws.close_code

    def left(self) -> list[dict]:
        return [e for e in self.seen if e["type"] == "participant.left"]


async def connect(node: Node, api: Api, user: dict, room_id: int, query: str = "") -> Client:
    if not query:
        ticket = (await asyncio.to_thread(api.ok, "POST", f"/api/rooms/{room_id}/join", {}))[
            "ticket"
        ]
        query = f"ticket={ticket}"
    ws = await ws_connect(f"{node.ws}/ws/rooms/{room_id}/?{query}", max_size=2**20)
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert welcome["type"] == "welcome", welcome
    return Client(ws, welcome, user)


def get(node: Node, path: str, token: str | None = None) -> tuple[int, dict | None]:
    request = urllib.request.Request(node.url + path)
    if token:
        request.add_header("Authorization", f"Token {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


async def aget(node: Node, path: str, token: str | None = None) -> tuple[int, dict | None]:
    return await asyncio.to_thread(get, node, path, token)


async def until(check, timeout: float, what: str, step: float = 0.1) -> float:
    """Poll `check` (async, truthy when done) until it holds; the seconds it took."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(step)


async def voice_reaches(sender: Client, listener: Client, timeout: float = 10) -> float:
    """Send a frame every 100 ms until `listener` hears one; the seconds it took."""
    payload = secrets.token_bytes(8)
    started = time.monotonic()

    async def speak():
        while True:
            await sender.ws.send(payload)
            await asyncio.sleep(0.1)

    speaker = asyncio.ensure_future(speak())
    try:
        await listener.frame_with(payload, timeout)
    finally:
        speaker.cancel()
    return time.monotonic() - started


async def chat_reaches(sender: Client, listener: Client, timeout: float = 10) -> float:
    """Send a chat line every 300 ms until `listener` reads one; the seconds it took."""
    text = secrets.token_hex(4)
    started = time.monotonic()

    async def say():
        while True:
            await sender.ws.send(json.dumps({"type": "chat", "text": text}))
            await asyncio.sleep(0.3)

    speaker = asyncio.ensure_future(say())
    try:
        await listener.event("chat", timeout, where=lambda e: e["text"] == text)
    finally:
        speaker.cancel()
    return time.monotonic() - started


async def people(node: Node, count: int, seat_count: int = 0):
    owner_api, owner = await asyncio.to_thread(Api.user, node.url)
    room = await asyncio.to_thread(
        owner_api.ok, "POST", "/api/rooms/", {"name": "faults", "seat_count": seat_count}
    )
    found = [(owner_api, owner)]
    for _ in range(count - 1):
        found.append(await asyncio.to_thread(Api.user, node.url))
    return room, found


def report(name: str, seconds: float) -> None:
    print(f"[faults] {name}: {seconds:.2f} s")


# -- Redis stopped and restarted ------------------------------------------------------------------


@pytest.mark.mysql
@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_redis_stopped_and_restarted_mid_room(kind, private_redis, live_db, nodes):
    env = fault_env(DATABASE_URL=live_db, REDIS_URL=private_redis.url)
    n1 = nodes.start(kind, env)
    n2 = nodes.start(kind, env)
    room, [(api_a, ua), (api_b, ub), (api_c, uc), (api_d, ud)] = await people(n1, 4)
    rid = room["id"]
    a = await connect(n1, api_a, ua, rid)
    b = await connect(n1, api_b, ub, rid)
    c = await connect(n2, api_c, uc, rid)
    await a.event("participant.joined", where=lambda e: e["participant"]["user_id"] == uc["id"])
    await voice_reaches(a, c)
    await voice_reaches(c, a)
    await chat_reaches(c, a)

    private_redis.stop()
    stopped = time.monotonic()
    for n in (n1, n2):
        report(
            "readyz 503 after Redis stopped",
            await until(lambda n=n: _ready_is(n, 503), 5, f"{n.url}/readyz answers 503"),
        )
        status, body = await aget(n, "/readyz")
        assert body["checks"]["channel_layer"]["ok"] is False, body
        assert body["checks"]["database"]["ok"] is True, body
        assert (await aget(n, "/healthz"))[0] == 200
    # REST that reads live state refuses with a code; REST that does not still works.
    status, body = await aget(n1, f"/api/rooms/{rid}/", api_a.token)
    assert (status, body["code"]) == (503, "redis_unavailable"), body
    status, body = await aget(n2, "/api/auth/me", api_c.token)
    assert status == 200, body
    # Voice between members of the same node keeps flowing, every frame in order.
    for i in range(20):
        await a.ws.send(b"local-%02d" % i)
    for i in range(20):
        assert (await b.frame_with(b"local-%02d" % i, 5))[9:] == b"local-%02d" % i
    # Chat cannot go out: the sender is told so, and keeps its socket.
    await a.ws.send(json.dumps({"type": "chat", "text": "lost"}))
    error = await a.event("error", 10)
    assert error["code"] == "service_unavailable", error
    await voice_reaches(b, a, 5)
    # A socket opened now is refused (its credential is in Redis); the node carries on.
    await refused(n2, f"/ws/rooms/{rid}/?resume={c.token}")
    # Stay down longer than VOICEROOM_NODE_DEAD_AFTER_S: every heartbeat looks stale.
    await asyncio.sleep(max(0.0, 3.0 - (time.monotonic() - stopped)))
    report("Redis down for", time.monotonic() - stopped)

    private_redis.start()
    back = time.monotonic()
    for n in (n1, n2):
        report(
            "readyz 200 after Redis restarted",
            await until(lambda n=n: _ready_is(n, 200), 15, f"{n.url}/readyz answers 200"),
        )
    report("voice n1->n2 after restart", await voice_reaches(a, c, 15))
    report("voice n2->n1 after restart", await voice_reaches(c, a, 15))
    report("chat n2->n1 after restart", await chat_reaches(c, a, 15))

    # The restarted Redis was empty: the nodes put their live sockets back into presence.
    async def three_online():
        counts = []
        for n in (n1, n2):
            status, body = await aget(n, f"/api/rooms/{rid}/", api_a.token)
            counts.append(body.get("online_count") if status == 200 else status)
        return counts == [3, 3]

    report("presence restored", await until(three_online, 10, "online_count 3 on both nodes"))
    report("everything back after restart", time.monotonic() - back)

    # A member whose socket drops now resumes, on the other node, with the token of its
    # last welcome (put back with its session).
    c.ws.transport.abort()
    await a.event(
        "participant.updated",
        10,
        where=lambda e: (
            e["participant"]["user_id"] == uc["id"] and not e["participant"]["connected"]
        ),
    )
    c2 = await connect(n1, api_c, uc, rid, query=f"resume={c.token}")
    assert c2.welcome["resumed"] is True
    await voice_reaches(c2, a)
    # Joining and leaving work as before.
    d = await connect(n2, api_d, ud, rid)
    await a.event("participant.joined", where=lambda e: e["participant"]["user_id"] == ud["id"])
    await voice_reaches(a, d)
    await d.ws.send(json.dumps({"type": "leave"}))
    left = await a.event("participant.left")
    assert left == {"type": "participant.left", "user_id": ud["id"], "reason": "left"}
    # Through all this nobody else was ever shown as gone.
    await a.drain(0.5)
    await b.drain(0.1)
    assert a.left() == [left] and b.left() in ([], [left])
    for m in (a, b, c2):
        await m.ws.close()


@pytest.mark.mysql
async def test_redis_hung_then_back_nobody_is_declared_dead_and_no_stale_burst(
    private_redis, live_db, nodes
):
    env = fault_env(DATABASE_URL=live_db, REDIS_URL=private_redis.url)
    n1 = nodes.start("uvicorn", env)
    n2 = nodes.start("uvicorn", env)
    room, [(api_a, ua), (api_b, ub), (api_c, uc)] = await people(n1, 3)
    rid = room["id"]
    a = await connect(n1, api_a, ua, rid)
    b = await connect(n1, api_b, ub, rid)
    c = await connect(n2, api_c, uc, rid)
    await a.event("participant.joined", where=lambda e: e["participant"]["user_id"] == uc["id"])
    await voice_reaches(a, c)

    private_redis.pause()
    hung = time.monotonic()
    try:

        async def talks_locally():
            # a talks on through the hang: b, on the same node, hears every frame at once.
            for i in range(50):
                await a.ws.send(b"hung-%03d" % i)
                assert (await b.frame_with(b"hung-%03d" % i, 1))[9:] == b"hung-%03d" % i
                await asyncio.sleep(0.05)

        async def not_ready(n: Node):
            await until(lambda: _ready_is(n, 503), 10, f"{n.url}/readyz answers 503")
            status, body = await aget(n, "/readyz")
            assert body["checks"]["channel_layer"]["ok"] is False, body

        await asyncio.gather(talks_locally(), not_ready(n1), not_ready(n2))
        # Longer than twice VOICEROOM_NODE_DEAD_AFTER_S: every heartbeat looks stale.
        await asyncio.sleep(max(0.0, 4.5 - (time.monotonic() - hung)))
        report("Redis hung for", time.monotonic() - hung)
    finally:
        private_redis.resume()
    for n in (n1, n2):
        report(
            "readyz 200 after Redis woke up",
            await until(lambda n=n: _ready_is(n, 200), 15, f"{n.url}/readyz answers 200"),
        )
    # What a said during the hang reaches the other node late, if at all: at most about
    # one second of it (what was in flight when Redis stopped answering), not a burst of
    # everything.
    stale = []
    try:
        async with asyncio.timeout(2):
            while True:
                raw = await c.ws.recv()
                if isinstance(raw, bytes) and raw[9:].startswith(b"hung-"):
                    stale.append(raw[9:])
                elif isinstance(raw, str):
                    c.seen.append(json.loads(raw))
    except TimeoutError:
        pass
    print(f"[faults] stale frames delivered after the hang: {len(stale)} of 50")
    assert len(stale) <= 20, len(stale)
    # ...and what was given up is counted, not silently lost.
    assert metric(n1, "voiceroom_voice_bus_dropped") >= 1
    report("voice n1->n2 after the hang", await voice_reaches(a, c, 15))
    report("voice n2->n1 after the hang", await voice_reaches(c, a, 15))
    await chat_reaches(c, a, 10)
    # Every heartbeat was held up, but no node declared another dead: nobody was shown
    # as disconnected, let alone gone.
    await a.drain(3)
    await c.drain(0.2)
    for m in (a, c):
        gone = [
            e
            for e in m.seen
            if e["type"] == "participant.left"
            or (e["type"] == "participant.updated" and not e["participant"]["connected"])
        ]
        assert gone == [], gone
    status, body = await aget(n2, f"/api/rooms/{rid}/", api_a.token)
    assert body["online_count"] == 3, body
    for m in (a, b, c):
        await m.ws.close()


async def refused(node: Node, path: str) -> str:
    """A socket that cannot be served while a dependency is down is accepted, then closed
    with 4503 (try again shortly); clients retry with backoff, and the node carries on."""
    ws = await ws_connect(node.ws + path, open_timeout=10)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)
    how = f"close {ws.close_code}"
    print(f"[faults] socket opened while a dependency is down: {how}")
    assert ws.close_code == 4503, how
    assert (await aget(node, "/healthz"))[0] == 200
    return how


async def _ready_is(node: Node, status: int) -> bool:
    return (await aget(node, "/readyz"))[0] == status


# -- MariaDB stopped ---------------------------------------------------------------------------


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, to compare what is stored before and after an outage."""
    from tests.live import _mysql_connect

    name = url.rpartition("/")[2]
    conn = _mysql_connect(url)
    try:
        cursor = conn.cursor()
        cursor.execute(f"USE {name}")
        cursor.execute("SHOW TABLES")
        tables = [row[0] for row in cursor.fetchall()]
        found = {}
        for table in tables:
            cursor.execute(f"SELECT * FROM `{table}`")
            found[table] = sorted(cursor.fetchall(), key=repr)
        return found
    finally:
        conn.close()


@pytest.fixture
def shared_redis_prefix():
    """A prefix of this test's own on the shared Redis; its keys are deleted afterwards."""
    import redis

    prefix = f"f{secrets.token_hex(3)}"
    yield prefix
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.redis
async def test_mariadb_stopped_voice_and_chat_go_on_rest_says_503_nothing_lost(
    private_mariadb, shared_redis_prefix, nodes
):
    from tests.live import _mysql_connect

    started = time.monotonic()
    admin = _mysql_connect(private_mariadb.url(""))
    admin.cursor().execute("CREATE DATABASE voiceroom_faults CHARACTER SET utf8mb4")
    admin.close()
    db_url = private_mariadb.url("voiceroom_faults")
    migrate(base_env(DATABASE_URL=db_url))
    report("private MariaDB started and migrated", time.monotonic() - started)
    env = fault_env(
        DATABASE_URL=db_url, REDIS_URL=os.environ["REDIS_URL"], VOICEROOM_RESUME_WINDOW_S="3"
    )
    env["VOICEROOM_REDIS_PREFIX"] = shared_redis_prefix
    n1 = nodes.start("uvicorn", env)
    n2 = nodes.start("uvicorn", env)
    room, found = await people(n1, 5, seat_count=4)
    [(api_a, ua), (api_b, ub), (api_c, uc), (api_d, ud), (api_e, ue)] = found
    rid = room["id"]
    a = await connect(n1, api_a, ua, rid)
    d = await connect(n1, api_d, ud, rid)
    b = await connect(n2, api_b, ub, rid)
    c = await connect(n2, api_c, uc, rid)
    await asyncio.to_thread(api_e.ok, "POST", f"/api/rooms/{rid}/join", {})
    await asyncio.to_thread(
        api_a.ok, "POST", f"/api/rooms/{rid}/members/{ue['id']}/ban", {"reason": "spam"}
    )
    await asyncio.to_thread(
        api_a.ok, "POST", f"/api/rooms/{rid}/members/{uc['id']}/mute", {"muted": True}
    )
    await a.ws.send(json.dumps({"type": "seat.take", "index": 0}))
    await b.ws.send(json.dumps({"type": "seat.take", "index": 1}))
    for m in (a, b):
        await m.event("seat.updated", where=lambda e: e["seat"]["user_id"] == ub["id"])
    await voice_reaches(a, b)
    await voice_reaches(b, a)
    before = snapshot(db_url)

    stopping = time.monotonic()
    private_mariadb.stop()
    stopped = time.monotonic()
    report("MariaDB stopped (SIGTERM) in", stopped - stopping)
    for n in (n1, n2):
        await until(lambda n=n: _ready_is(n, 503), 5, f"{n.url}/readyz answers 503")
        status, body = await aget(n, "/readyz")
        assert body["checks"]["database"]["ok"] is False, body
        assert body["checks"]["channel_layer"]["ok"] is True, body
        assert (await aget(n, "/healthz"))[0] == 200
    # REST answers 503 with a code, in JSON.
    for call in (
        lambda: Api(n1.url, api_a.token).call("GET", "/api/rooms/"),
        lambda: Api(n2.url, api_b.token).call("GET", f"/api/rooms/{rid}/"),
        lambda: Api(n2.url, api_e.token).call("POST", f"/api/rooms/{rid}/join", {}),
        lambda: Api(n1.url, api_a.token).call("POST", f"/api/rooms/{rid}/members/{uc['id']}/kick"),
        lambda: Api(n1.url).call("POST", "/api/auth/login", {"username": "x", "password": "y"}),
    ):
        status, body = await asyncio.to_thread(call)
        assert (status, body and body.get("code")) == (503, "database_unavailable"), body
    # Voice keeps flowing between connected members, across nodes, every frame in order.
    seq = None
    for i in range(20):
        await a.ws.send(b"db-down-%02d" % i)
    for listener in (b, c, d):
        frames = [await listener.frame_with(b"db-down-%02d" % i, 5) for i in range(20)]
        seqs = [int.from_bytes(f[5:9], "big") for f in frames]
        assert seqs == list(range(seqs[0], seqs[0] + 20))
        assert seq in (None, seqs[0])
        seq = seqs[0]
    await voice_reaches(b, a, 5)
    # Chat needs no database: it goes on too, across nodes.
    await chat_reaches(b, a, 5)
    await chat_reaches(a, c, 5)
    # A frame that writes is refused with a code; the socket stays and still speaks.
    await b.ws.send(json.dumps({"type": "seat.leave"}))
    assert (await b.event("error", 10))["code"] == "service_unavailable"
    await voice_reaches(b, a, 5)
    # A socket that drops now, and one that opens now, do not take the node down.
    d.ws.transport.abort()
    await refused(n1, f"/ws/rooms/{rid}/?resume={d.token}")
    await voice_reaches(a, b, 5)
    # Down longer than the resume window: the dropped member's timeout falls due now.
    await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - stopped)))
    report("MariaDB down for", time.monotonic() - stopped)

    back = time.monotonic()
    private_mariadb.start()
    report("MariaDB restarted in", time.monotonic() - back)
    for n in (n1, n2):
        report(
            "readyz 200 after MariaDB restarted",
            await until(lambda n=n: _ready_is(n, 200), 15, f"{n.url}/readyz answers 200"),
        )
    status, body = await aget(n2, f"/api/rooms/{rid}/members/", api_b.token)
    assert status == 200, body
    report("REST 200 after MariaDB restarted", time.monotonic() - back)
    # The reaper lived through the outage: the member who dropped is timed out now.
    left = await a.event("participant.left", 10)
    assert left == {"type": "participant.left", "user_id": ud["id"], "reason": "timeout"}
    report("timeout that fell due during the outage done", time.monotonic() - back)
    status, body = await aget(n2, f"/api/rooms/{rid}/", api_b.token)
    assert status == 200 and body["online_count"] == 3, body
    await asyncio.sleep(0.5)
    after = snapshot(db_url)
    # Everything stored before is still there, unchanged: rooms, memberships, seats, bans,
    # mutes, the audit log, users and tokens. The one change is the timed-out member.
    memberships = "rooms_membership"
    columns = _columns(db_url, memberships)
    user_col = columns.index("user_id")

    def without_d(rows):
        return [r for r in rows if r[user_col] != ud["id"]]

    for table, rows in before.items():
        if table == memberships:
            assert without_d(after[table]) == without_d(rows)
        else:
            assert after[table] == rows, table
    [d_row] = [r for r in after[memberships] if r[user_col] == ud["id"]]
    assert d_row[columns.index("active")] == 0
    assert any(r[columns.index("banned")] for r in after[memberships])
    # Writes work again.
    await b.ws.send(json.dumps({"type": "seat.leave"}))
    freed = await a.event("seat.updated", where=lambda e: e["seat"]["index"] == 1)
    assert freed["seat"]["user_id"] is None
    await voice_reaches(a, b)
    assert all(e["user_id"] == ud["id"] for e in a.left() + b.left() + c.left())
    for m in (a, b, c):
        await m.ws.close()


def _columns(url: str, table: str) -> list[str]:
    from tests.live import _mysql_connect

    conn = _mysql_connect(url)
    try:
        cursor = conn.cursor()
        cursor.execute(f"SELECT * FROM {url.rpartition('/')[2]}.`{table}` LIMIT 0")
        return [d[0] for d in cursor.description]
    finally:
        conn.close()


# -- a node restarted ----------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.mysql
@pytest.mark.parametrize("kind", ["uvicorn", "daphne"])
async def test_a_node_restarted_on_its_port_gets_its_clients_back(
    kind, live_db, shared_redis_prefix, nodes
):
    env = fault_env(DATABASE_URL=live_db, REDIS_URL=os.environ["REDIS_URL"])
    env["VOICEROOM_REDIS_PREFIX"] = shared_redis_prefix
    n1 = nodes.start(kind, env)
    n2 = nodes.start(kind, env)
    room, [(api_a, ua), (api_b, ub), (api_c, uc)] = await people(n1, 3, seat_count=4)
    rid = room["id"]
    a = await connect(n1, api_a, ua, rid)
    b = await connect(n2, api_b, ub, rid)
    c = await connect(n2, api_c, uc, rid)
    await a.ws.send(json.dumps({"type": "seat.take", "index": 0}))
    await b.ws.send(json.dumps({"type": "seat.take", "index": 1}))
    await a.event("seat.updated", where=lambda e: e["seat"]["user_id"] == ub["id"])
    await voice_reaches(a, b)
    await voice_reaches(b, a)

    for how in (signal.SIGTERM, signal.SIGKILL):
        stopping = time.monotonic()
        n2.stop(how)  # same port, same environment; a new process is a new node id
        if how == signal.SIGTERM:  # it exits by itself (it used to hang for good on daphne)
            assert n2.proc.returncode != -signal.SIGKILL, "the node did not exit on SIGTERM"
        for m in (b, c):
            await m.closed(10)
        expected = {signal.SIGTERM: 1012 if kind == "uvicorn" else 4013, signal.SIGKILL: 1006}
        assert b.ws.close_code == c.ws.close_code == expected[how]
        n2.start()
        report(f"{kind} node back after {how.name}", time.monotonic() - stopping)
        # A resume token never takes over a session that is still connected: resume once
        # the room sees them gone (at once after SIGTERM; after SIGKILL when n1 has
        # declared the old process dead).
        away: set[int] = set()
        while away != {ub["id"], uc["id"]}:
            gone = await a.event(
                "participant.updated", 10, where=lambda e: not e["participant"]["connected"]
            )
            away.add(gone["participant"]["user_id"])
        b2 = await connect(n2, api_b, ub, rid, query=f"resume={b.token}")
        c2 = await connect(n2, api_c, uc, rid, query=f"resume={c.token}")
        assert b2.welcome["resumed"] is True and c2.welcome["resumed"] is True
        assert b2.welcome["you"]["seat"] == 1 and c2.welcome["you"]["seat"] is None
        assert b2.token != b.token  # single use: every welcome brings a new one
        seats = {s["index"]: s["user_id"] for s in b2.welcome["seats"]}
        assert seats[0] == ua["id"] and seats[1] == ub["id"]
        report(f"{kind} clients resumed after {how.name}", time.monotonic() - stopping)
        report(f"voice n1->n2 after {how.name}", await voice_reaches(a, b2))
        report(f"voice n2->n1 after {how.name}", await voice_reaches(b2, a))
        await voice_reaches(a, c2)
        await chat_reaches(c2, a)
        b, c = b2, c2
    # Longer than VOICEROOM_NODE_DEAD_AFTER_S: the killed process is declared dead, and
    # that must not take away the members who came back.
    await a.drain(3.5)
    assert a.left() == [], a.left()
    status, body = await aget(n1, f"/api/rooms/{rid}/", api_a.token)
    assert body["online_count"] == 3, body
    await voice_reaches(b, a)
    for m in (a, b, c):
        await m.ws.close()
