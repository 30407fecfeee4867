"""The relay's hot path in isolation: fan-out, skipping backed-up sockets, gating, limits."""

from __future__ import annotations

import asyncio

from realtime.bus import VoiceBus
from realtime.relay import Endpoint, Relay, stats
from realtime.servers import ServerSocket
from rooms.ws.frames import HEADER


class FakeSocket:
    """An ASGI send that completes at once, or blocks while `paused` (flow control)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.paused = False
        self.resume = asyncio.Event()

    async def send(self, message):
        if self.paused:
            await self.resume.wait()
        self.sent.append(message["bytes"])


def endpoint(relay: Relay, user_id: int, room_id: int = 1) -> tuple[Endpoint, FakeSocket]:
    sock = FakeSocket()
    ep = Endpoint(room_id=room_id, user_id=user_id, send=sock.send)
    ep.can_speak = True
    relay.add(ep)
    return ep, sock


async def test_a_frame_reaches_every_other_socket_with_one_header_and_not_the_sender():
    relay = Relay()
    (a, sa), (b, sb), (c, sc) = (endpoint(relay, uid) for uid in (7, 8, 9))
    assert relay.voice_in(a, b"payload") is None
    expected = HEADER.pack(1, 7, 1) + b"payload"
    assert sb.sent == [expected] and sc.sent == [expected] and sa.sent == []


async def test_a_backed_up_socket_is_skipped_not_awaited_and_resumes_later():
    relay = Relay()
    (a, _), (slow, s_slow), (fast, s_fast) = (endpoint(relay, uid) for uid in (1, 2, 3))
    s_slow.paused = True
    before = stats.dropped_backlog
    for i in range(5):
        relay.voice_in(a, bytes([i]))
    # The fast listener got everything at once; the slow one holds one pending frame.
    assert [f[9:] for f in s_fast.sent] == [bytes([i]) for i in range(5)]
    assert slow.busy and s_slow.sent == []
    assert stats.dropped_backlog - before == 4
    s_slow.paused = False
    s_slow.resume.set()
    await asyncio.sleep(0.01)
    assert not slow.busy and [f[9:] for f in s_slow.sent] == [b"\x00"]
    relay.voice_in(a, b"again")
    assert s_slow.sent[-1][9:] == b"again"


async def test_a_sender_who_may_not_speak_is_dropped_and_its_sequence_does_not_move():
    relay = Relay()
    (a, _), (_b, sb) = endpoint(relay, 1), endpoint(relay, 2)
    a.can_speak = False
    relay.voice_in(a, b"x")
    assert sb.sent == [] and a.seq == 0
    a.can_speak = True
    relay.voice_in(a, b"x")
    assert HEADER.unpack(sb.sent[0][:9]) == (1, 1, 1)


async def test_size_limits():
    relay = Relay()
    (a, _), (_b, sb) = endpoint(relay, 1), endpoint(relay, 2)
    assert relay.voice_in(a, b"") == "empty_frame"
    assert relay.voice_in(a, b"x" * 4097) == "frame_too_large"
    assert relay.voice_in(a, b"x" * 4096) is None
    assert len(sb.sent) == 1


async def test_rooms_are_separate_and_remote_frames_skip_their_sender():
    relay = Relay()
    (a, sa), (_b, sb) = endpoint(relay, 1, room_id=1), endpoint(relay, 2, room_id=1)
    (c, sc) = endpoint(relay, 3, room_id=2)
    relay.voice_in(a, b"x")
    assert sc.sent == []
    remote = HEADER.pack(1, 2, 5) + b"from node B"
    relay.deliver_remote(1, 0, remote)  # user 2 speaking elsewhere: not echoed to user 2
    assert sa.sent == [remote] and sb.sent[-1] != remote
    relay.deliver_remote(1, 1, HEADER.pack(2, 9, 1) + b"whisper")
    assert sa.sent[-1][9:] == b"whisper"


async def test_leaving_the_registry_and_replacement():
    relay = Relay()
    (a, _), (b, sb) = endpoint(relay, 1), endpoint(relay, 2)
    old_b = b
    new_b, new_sb = endpoint(relay, 2)  # the same user's newer socket replaces the entry
    relay.remove(old_b)  # the older socket's cleanup must not remove the newer one
    relay.voice_in(a, b"x")
    assert new_sb.sent and not sb.sent
    relay.remove(new_b)
    relay.remove(a)
    assert relay.rooms == {}


async def test_the_bus_publishes_nothing_for_a_room_only_this_node_has():
    relay = Relay()
    bus = VoiceBus(relay, redis="redis://unused", prefix="t", node_id="node-a")
    relay.bus = bus
    (a, _), (_b, _) = endpoint(relay, 1), endpoint(relay, 2)
    # Right after the room arrives on this node, other nodes are assumed until they answer.
    relay.voice_in(a, b"w")
    assert len(bus._queue) == 1
    bus._queue.clear()
    bus.remote[1] = {}  # nobody answered: the assumption expired
    relay.voice_in(a, b"x")
    assert bus._queue == []
    bus.remote[1] = {b"node-b".ljust(16, b"-"): 0.0}
    relay.voice_in(a, b"y")
    assert len(bus._queue) == 1
    channel, message = bus._queue[0]
    assert channel == "t:v:1" and message[:16] == b"node-a".ljust(16, b"-")
    assert message[20:] == HEADER.pack(1, 1, 3) + b"y"


async def test_an_overloaded_node_sheds_new_frames_instead_of_queueing_them():
    relay = Relay()
    (a, _), (_b, sb) = endpoint(relay, 1), endpoint(relay, 2)
    relay.overloaded = True
    before = stats.dropped_overload
    relay.voice_in(a, b"late")
    assert sb.sent == [] and stats.dropped_overload == before + 1 and a.seq == 0
    relay.overloaded = False
    relay.voice_in(a, b"on time")
    assert [f[9:] for f in sb.sent] == [b"on time"]


async def test_the_lag_watch_notices_a_blocked_loop():
    import time

    relay = Relay()
    relay.watch_lag(0.1)
    await asyncio.sleep(0.06)
    time.sleep(0.3)  # noqa: ASYNC251 - the loop is blocked, as under a load it cannot carry
    await asyncio.sleep(0.01)
    assert relay.overloaded is True
    for _ in range(40):  # and recovers once the loop is on time again
        await asyncio.sleep(0.05)
        if not relay.overloaded:
            break
    assert relay.overloaded is False
    relay._lag_task.cancel()


async def test_a_send_still_blocked_when_its_finisher_runs_completes_and_counts_later_drops():
    """The stalled-listener case: the finisher starts while the transport is still paused."""
    relay = Relay()
    (a, _), (slow, s_slow) = endpoint(relay, 1), endpoint(relay, 2)
    s_slow.paused = True
    relay.voice_in(a, b"first")
    await asyncio.sleep(0.02)  # the finisher is now waiting on the paused transport
    assert slow.busy
    before = stats.dropped_backlog
    for _ in range(3):
        relay.voice_in(a, b"later")
    assert stats.dropped_backlog - before == 3 and slow.busy
    s_slow.paused = False
    s_slow.resume.set()
    await asyncio.sleep(0.02)
    assert not slow.busy and [f[9:] for f in s_slow.sent] == [b"first"]


# -- hopeless sockets ----------------------------------------------------------------


class FakeServerSocket(ServerSocket):
    def __init__(self) -> None:
        self.closing = False
        self.aborted = 0

    def stuck(self) -> bool:
        return self.closing

    def abort(self) -> bool:
        self.aborted += 1
        return True


class ClosableSocket(FakeSocket):
    """A FakeSocket that records close messages (which also wait while paused)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed: list[int] = []

    async def send(self, message):
        if self.paused:
            await self.resume.wait()
        if message["type"] == "websocket.close":
            self.closed.append(message["code"])
        else:
            self.sent.append(message["bytes"])


def stalled_pair(relay: Relay):
    speaker, _ = endpoint(relay, 1)
    sock = ClosableSocket()
    slow = Endpoint(room_id=1, user_id=2, send=sock.send)
    slow.server = FakeServerSocket()
    relay.add(slow)
    return speaker, slow, sock


async def test_a_socket_backed_up_past_the_limit_is_closed_4014_then_aborted():
    relay = Relay()
    speaker, slow, sock = stalled_pair(relay)
    sock.paused = True
    relay.voice_in(speaker, b"x")  # the send suspends: the socket is backed up from now
    assert slow.busy and slow.stalled_since
    t0 = slow.stalled_since
    closed, aborted = stats.closed_stalled, stats.aborted_stalled

    relay.sweep_stalled(10, t0 + 9.9)
    assert not slow.stall_close_sent and slow.server.aborted == 0
    relay.sweep_stalled(10, t0 + 10)
    assert slow.stall_close_sent and stats.closed_stalled == closed + 1
    await asyncio.sleep(0)
    assert sock.closed == []  # the close waits behind the backlog, like any write
    relay.sweep_stalled(10, t0 + 10 + 1)
    assert slow.server.aborted == 0  # the close gets its grace period
    relay.sweep_stalled(10, t0 + 10 + 2)
    assert slow.server.aborted == 1 and stats.aborted_stalled == aborted + 1


async def test_a_slow_socket_that_catches_up_is_left_alone_and_its_clock_restarts():
    relay = Relay()
    speaker, slow, sock = stalled_pair(relay)
    sock.paused = True
    relay.voice_in(speaker, b"x")
    t0 = slow.stalled_since
    relay.sweep_stalled(10, t0 + 8)
    sock.paused = False
    sock.resume.set()  # the client read: its send finished
    await asyncio.sleep(0.01)
    assert not slow.busy and slow.stalled_since == 0.0
    relay.sweep_stalled(10, t0 + 30)
    assert not slow.stall_close_sent and slow.server.aborted == 0


async def test_a_socket_stuck_closing_is_aborted_after_the_limit_and_grace():
    relay = Relay()
    _, slow, _ = stalled_pair(relay)
    slow.server.closing = True  # e.g. a keepalive close waiting on a buffer that never drains
    relay.sweep_stalled(5, 100.0)  # first seen stuck: the clock starts
    assert slow.stalled_since == 100.0
    relay.sweep_stalled(5, 105.0)
    assert slow.stall_close_sent
    relay.sweep_stalled(5, 107.0)
    assert slow.server.aborted == 1


async def test_the_stall_watch_runs_the_sweep_in_the_background():
    relay = Relay()
    _, slow, _ = stalled_pair(relay)
    slow.server.closing = True
    relay.watch_stalls(0.2)
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            if slow.server.aborted:
                break
        assert slow.stall_close_sent and slow.server.aborted >= 1
    finally:
        relay._stall_task.cancel()


async def test_sockets_per_user_are_counted_over_rooms_and_replacement_does_not_count_twice():
    relay = Relay()
    a1, _ = endpoint(relay, 5, room_id=1)
    endpoint(relay, 5, room_id=2)
    assert relay.sockets_of(5) == 2
    newer, _ = endpoint(relay, 5, room_id=1)  # the same member reconnected in room 1
    assert relay.sockets_of(5) == 2
    relay.remove(a1)  # the replaced socket's late cleanup changes nothing
    assert relay.sockets_of(5) == 2
    relay.remove(newer)
    assert relay.sockets_of(5) == 1
