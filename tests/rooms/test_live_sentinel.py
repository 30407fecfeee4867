"""Redis fails over under a live cluster (contract v1.1, "Redis through Sentinel").

Real processes: a Redis master, one replica and three sentinels of the test's own on
loopback ports (tests/live.py `SentinelSet`), two uvicorn nodes that find the master
through the sentinels (REDIS_SENTINELS, REDIS_SENTINEL_MASTER), members on both nodes
talking. The master is killed with SIGKILL while they talk, and the test shows what the
contract promises: sockets stay open, voice between members of one node never stops,
cross-node chat and voice come back once Sentinel has promoted the replica (the time it
takes is measured and printed), presence is right on both nodes, the database lost
nothing.

The replica is made to lag on purpose before the kill (it is cut off from the master and
cannot reconnect), and the last member joins in that window: the promoted replica has
never heard of that member's session, so the room's participant list is right afterwards
only because the nodes put their own sockets back into presence once Redis answers
again (rooms/reaper.py, `participants_reattach`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest
import redis

from tests.live import Node, SentinelSet
from tests.rooms.test_live_faults import (
    Client,
    Nodes,
    _ready_is,
    aget,
    chat_reaches,
    connect,
    fault_env,
    people,
    report,
    snapshot,
    until,
    voice_reaches,
)

pytestmark = [pytest.mark.processes, pytest.mark.sentinel, pytest.mark.mysql]

# Voice between two members of the same node: no silence longer than this at any time,
# failover included (frames are sent every 20 ms; the bound leaves room for a machine
# shared with other test runs, and is still far below what a Redis round trip per frame
# through a failover would cost: seconds).
LOCAL_GAP_BOUND_S = 1.0
# Cross-node chat must be back within this after the kill (measured: see the test's output
# and docs/operations.md; Sentinel itself needs down-after 1 s plus an election).
RESUME_BOUND_S = 15.0
FRAME_EVERY_S = 0.02


@pytest.fixture
def sentinel_set():
    started = SentinelSet(down_after_ms=1000, failover_timeout_ms=3000).start()
    yield started
    print(f"--- sentinels ---\n{started.output()}")  # shown on failure
    started.stop()


@pytest.fixture
def nodes():
    started = Nodes()
    yield started
    started.close()


class Member:
    """A client whose socket is read all the time by a task of its own, recording when
    each voice frame of a stream and each chat line arrived."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ws = client.ws
        self.id = client.id
        self.events = client.seen
        self.voice: dict[bytes, list[tuple[float, int]]] = {}  # stream tag -> (arrival, seq)
        self.chats: list[tuple[float, str]] = []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            now = time.monotonic()
            if isinstance(raw, str):
                event = json.loads(raw)
                self.events.append(event)
                if event["type"] == "chat":
                    self.chats.append((now, event["text"]))
            elif len(raw) == 9 + 8 and raw[13:17] == b"strm":
                self.voice.setdefault(raw[9:10], []).append(
                    (now, int.from_bytes(raw[10:13], "big"))
                )

    def open(self) -> bool:
        return not self.task.done()

    def gone(self) -> list[dict]:
        """Events that showed someone as gone: there must be none."""
        return [
            e
            for e in self.events
            if e["type"] == "participant.left"
            or (e["type"] == "participant.updated" and not e["participant"]["connected"])
        ]


async def stream(member: Member, tag: bytes, stop: asyncio.Event) -> list[float]:
    """Send numbered voice frames every 20 ms until `stop`; when each was sent."""
    sent: list[float] = []
    while not stop.is_set():
        sent.append(time.monotonic())
        await member.ws.send(tag + (len(sent) - 1).to_bytes(3, "big") + b"strm")
        await asyncio.sleep(FRAME_EVERY_S)
    return sent


def latency(arrivals: list[tuple[float, int]], sent: list[float]) -> float:
    """The longest a frame took from the test's send to the test's receive: a node that
    held frames back (waiting on Redis) shows here, a test process that stalled (and so
    sent nothing for a while) does not."""
    return max(at - sent[seq] for at, seq in arrivals)


async def chat_back(
    sender: Member, listener: Member, since: float, label: str, bound: float = RESUME_BOUND_S
) -> float:
    """Send a chat line every 200 ms until one reaches `listener`; seconds since `since`."""
    i = 0
    while True:
        await sender.ws.send(json.dumps({"type": "chat", "text": f"{label}-{i}"}))
        i += 1
        arrived = [t for t, text in listener.chats if text.startswith(f"{label}-")]
        if arrived:
            return arrived[0] - since
        if time.monotonic() - since > bound:
            raise AssertionError(f"chat {label} not back within {bound} s")
        await asyncio.sleep(0.2)


def max_gap(arrivals: list[tuple[float, int]]) -> float:
    times = [t for t, _ in arrivals]
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def gap_report(name: str, arrivals: list[tuple[float, int]], killed: float) -> None:
    """The longest silence, and when it began, counted from the kill."""
    times = [t for t, _ in arrivals]
    gap, start = max(((b - a, a) for a, b in itertools.pairwise(times)), default=(0.0, killed))
    print(f"[sentinel] longest silence {name}: {gap:.2f} s, from {start - killed:+.2f} s")


def in_order_without_loss(arrivals: list[tuple[float, int]]) -> bool:
    seqs = [s for _, s in arrivals]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False


def lag_the_replica(sentinels: SentinelSet) -> redis.Redis:
    """Cut the replica off from the master so that it cannot reconnect (a wrong
    masterauth): writes from now on exist only on the master."""
    replica = redis.Redis(port=sentinels.replica.port, socket_timeout=2)
    master = redis.Redis(port=sentinels.master.port, socket_timeout=2)
    replica.config_set("masterauth", "not-the-password")
    master.client_kill_filter(_type="replica")
    master.close()
    deadline = time.monotonic() + 5
    while replica.info("replication")["master_link_status"] != "down":
        assert time.monotonic() < deadline, "the replica stayed linked to the master"
        time.sleep(0.05)
    return replica


async def test_master_killed_voice_goes_on_events_resume_presence_rebuilt_nothing_lost(
    sentinel_set, live_db, nodes
):
    env = fault_env(DATABASE_URL=live_db, **sentinel_set.env)
    prefix = env["VOICEROOM_REDIS_PREFIX"]
    n1 = nodes.start("uvicorn", env)
    n2 = nodes.start("uvicorn", env)
    room, [(api_a, ua), (api_b, ub), (api_c, uc), (api_d, ud), (api_e, ue)] = await people(n1, 5)
    rid = room["id"]
    ca = await connect(n1, api_a, ua, rid)
    cb = await connect(n1, api_b, ub, rid)
    cc = await connect(n2, api_c, uc, rid)
    await ca.event("participant.joined", where=lambda e: e["participant"]["user_id"] == uc["id"])
    await voice_reaches(ca, cc)
    await voice_reaches(cc, ca)
    await chat_reaches(cc, ca)
    a, b, c = Member(ca), Member(cb), Member(cc)

    stop = asyncio.Event()
    streams = [
        asyncio.ensure_future(stream(a, b"A", stop)),  # heard by b (n1) and c (n2)
        asyncio.ensure_future(stream(c, b"C", stop)),  # heard by d (n2) and a, b (n1)
    ]
    try:
        # d joins while the replica lags: its session is on the master only.
        replica = await asyncio.to_thread(lag_the_replica, sentinel_set)
        d = Member(await connect(n2, api_d, ud, rid))
        await until(lambda: _seen(a, "participant.joined", ud["id"]), 5, "a sees d join", step=0.05)
        key = f"{prefix}:p:{rid}"
        assert await asyncio.to_thread(replica.hget, key, ud["id"]) is None
        assert await asyncio.to_thread(replica.hget, key, ua["id"]) is not None
        replica.close()
        await asyncio.sleep(1.0)  # a second of every stream before the kill
        before = await asyncio.to_thread(snapshot, live_db)

        sentinel_set.master.kill()
        killed = time.monotonic()

        promoted, *back = await asyncio.gather(
            _promotion(sentinel_set, killed),
            chat_back(c, a, killed, "n2-to-n1"),
            chat_back(a, c, killed, "n1-to-n2"),
        )
        report("sentinels name the replica as master after the kill", promoted)
        report("chat n2->n1 back after the kill", back[0])
        report("chat n1->n2 back after the kill", back[1])
        for n in (n1, n2):
            await until(lambda n=n: _ready_is(n, 200), 15, f"{n.url}/readyz 200")
            report(f"readyz 200 on :{n.port} after the kill", time.monotonic() - killed)

        # Cross-node voice is back: c hears a's stream again, a hears c's.
        def heard_after(member: Member, tag: bytes, t: float) -> bool:
            return any(at > t for at, _ in member.voice.get(tag, []))

        after = time.monotonic()
        await until(lambda: _true(heard_after(c, b"A", after)), 10, "c (n2) hears a (n1)")
        await until(lambda: _true(heard_after(a, b"C", after)), 10, "a (n1) hears c (n2)")
        report("cross-node voice heard both ways after the kill", time.monotonic() - killed)

        # Presence is right on both nodes, d (whom the new master never knew) included.
        everyone = {u["id"] for u in (ua, ub, uc, ud)}
        await until(
            lambda: _everyone_online(api_a.token, rid, (n1, n2), everyone),
            15,
            "all four connected in the room on both nodes",
        )
        report("presence right on both nodes after the kill", time.monotonic() - killed)

        # A newcomer joins after the failover: its ticket goes through the cache and its
        # session through presence, both on the new master.
        e = Member(await connect(n1, api_e, ue, rid))
        await until(lambda: _seen(c, "participant.joined", ue["id"]), 10, "c sees e join")
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        sent = await asyncio.gather(*streams)
    await asyncio.sleep(0.5)  # the last frames in flight

    # Voice within one node never stopped: every frame arrived, in order, no long gap.
    local = {
        "a->b (n1)": (b.voice.get(b"A", []), sent[0]),
        "c->d (n2)": (d.voice.get(b"C", []), sent[1]),
    }
    for name, (arrivals, times) in local.items():
        gap_report(name, arrivals, killed)
        print(f"[sentinel] longest frame delay {name}: {latency(arrivals, times):.3f} s")
        assert in_order_without_loss(arrivals), f"{name}: frames lost or out of order"
        assert arrivals[-1][1] == len(times) - 1, f"{name}: the last frame did not arrive"
        assert max_gap(arrivals) < LOCAL_GAP_BOUND_S, (name, max_gap(arrivals))
        assert latency(arrivals, times) < LOCAL_GAP_BOUND_S, (name, latency(arrivals, times))
    # Across nodes there was a gap (frames published while Redis was away are dropped).
    gap_report("a->c (n1 -> n2)", c.voice[b"A"], killed)
    gap_report("c->a (n2 -> n1)", a.voice[b"C"], killed)

    # Nobody's socket closed and nobody was ever shown as gone.
    for m in (a, b, c, d, e):
        assert m.open(), f"user {m.id}'s socket closed"
        assert m.gone() == [], m.gone()

    # Nothing stored in the database was lost: every row from before is still there.
    stored = await asyncio.to_thread(snapshot, live_db)
    for table, rows in before.items():
        missing = set(rows) - set(stored.get(table, []))
        assert not missing, (table, missing)
    memberships = {
        row for row in stored["rooms_membership"] if row not in set(before["rooms_membership"])
    }
    assert len(memberships) >= 1  # e's, written after the failover

    for m in (a, b, c, d, e):
        await m.ws.close()
        await asyncio.gather(m.task, return_exceptions=True)


async def _true(value: bool) -> bool:
    return value


async def _seen(member: Member, kind: str, user_id: int) -> bool:
    return any(
        e["type"] == kind and e.get("participant", {}).get("user_id") == user_id
        for e in member.events
    )


async def _promotion(sentinels: SentinelSet, since: float) -> float:
    """Poll the sentinels until they name the replica; seconds since `since`."""
    while True:
        try:
            if await asyncio.to_thread(sentinels.master_port) == sentinels.replica.port:
                return time.monotonic() - since
        except redis.RedisError:
            pass
        if time.monotonic() - since > RESUME_BOUND_S:
            raise AssertionError("the sentinels did not promote the replica")
        await asyncio.sleep(0.05)


async def _everyone_online(token: str, rid: int, on: tuple[Node, ...], users: set[int]) -> bool:
    for n in on:
        status, body = await aget(n, f"/api/rooms/{rid}/", token)
        if status != 200:
            return False
        connected = {p["user_id"] for p in body["participants"] if p["connected"]}
        if connected != users or body["online_count"] != len(users):
            return False
    return True


async def test_a_master_that_hangs_holds_back_no_voice(sentinel_set, live_db, nodes):
    """A master that stops answering (SIGSTOP: connections open, nothing answered) while
    a member chats: the chat's PUBLISH hangs, and the member's voice sent right after it
    (which the node keeps behind it, in order) must still reach the others at once; the
    member is told the chat did not go out. Without the chat's send timeout
    (rooms/events.py STRICT_SEND_TIMEOUT_S) the frame waited 5 s here.

    The old master never answers again, so no connection to it ever fails: the nodes
    must notice that the sentinels name another master and move their subscriptions
    (realtime/redis_client.py `follow_master`). Without that, cross-node chat had not come
    back 15 s after the hang began."""
    env = fault_env(DATABASE_URL=live_db, **sentinel_set.env)
    n1 = nodes.start("uvicorn", env)
    n2 = nodes.start("uvicorn", env)
    room, [(api_a, ua), (api_b, ub), (api_c, uc)] = await people(n1, 3)
    rid = room["id"]
    ca = await connect(n1, api_a, ua, rid)
    cb = await connect(n1, api_b, ub, rid)
    cc = await connect(n2, api_c, uc, rid)
    await ca.event("participant.joined", where=lambda e: e["participant"]["user_id"] == uc["id"])
    await voice_reaches(ca, cb)
    await chat_reaches(cc, ca)
    a, b, c = Member(ca), Member(cb), Member(cc)

    sentinel_set.master.pause()
    hung = time.monotonic()
    try:
        await a.ws.send(json.dumps({"type": "chat", "text": "into-the-void"}))
        sent = time.monotonic()
        await a.ws.send(b"A" + (0).to_bytes(3, "big") + b"strm")
        await until(lambda: _true(bool(b.voice.get(b"A"))), 10, "b hears a's frame after chat")
        held = b.voice[b"A"][0][0] - sent
        report("voice held behind a chat stuck on a hung master", held)
        assert held < LOCAL_GAP_BOUND_S
        await until(
            lambda: _true(any(e.get("code") == "service_unavailable" for e in a.events)),
            5,
            "a is told its chat did not go out",
        )
        promoted = await _promotion(sentinel_set, hung)
        report("replica promoted after the hang began", promoted)
        # The old master stays silent (a host gone without a word): the nodes must leave
        # it for the promoted replica by themselves, subscriptions included.
        back = await chat_back(c, a, hung, "hung-n2-to-n1")
        report("chat n2->n1 back, the old master still hung, after", back)
        back = await chat_back(a, c, hung, "hung-n1-to-n2")
        report("chat n1->n2 back, the old master still hung, after", back)
        spoken = time.monotonic()

        async def heard_across() -> bool:
            await a.ws.send(b"A" + (1).to_bytes(3, "big") + b"strm")
            return any(at > spoken for at, _ in c.voice.get(b"A", []))

        await until(heard_across, 10, "c (n2) hears a (n1)")
        report("voice n1->n2 back, the old master still hung, after", time.monotonic() - hung)
    finally:
        sentinel_set.master.resume()
    for m in (a, b, c):
        assert m.open() and m.gone() == []
        await m.ws.close()
        await asyncio.gather(m.task, return_exceptions=True)
