"""What recording costs the relay, in one process: the relay's hot path with N rooms
recording against none, alternating in the same run (issue 16).

    python -m bench.recording_cost                       # 10 rooms x 20 members, 2 speakers
    python -m bench.recording_cost --rooms 10 --recording 10 --seconds 4 --rounds 3

Each round relays the same frames through `Relay.voice_in` (with the frame tap: evidence
rings always) to sockets whose send completes at once, first with no room recording,
then with `--recording` rooms recording to real files (the writer thread muxing Ogg Opus
pages and flushing them, as on a node). CPU is the process's (relay plus writer thread),
per delivery. No network and no server: the socket costs that a real run adds are the
same with and without recording, so this is the recording's own share, measured apart
from the rest of the machine's load. `bench.run --recording N` measures the whole thing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from realtime import recording as rec
from realtime.limits import Bucket
from realtime.relay import Endpoint, Relay
from realtime.tap import FrameTap

PACKET = bytes([0xF8]) + bytes(range(119))  # 120 bytes, a 20 ms Opus packet's TOC


class FileStore:
    def __init__(self, root: str) -> None:
        self.root = root

    def open(self, room_id, recording_id, user_id, codec):
        path = os.path.join(self.root, f"{room_id}-{recording_id}-{user_id}.ogg")
        return open(path, "wb")

    def close(self, room_id, recording_id, user_id, out, size, dur):
        out.close()


async def _send(message) -> None:
    return None


def build(rooms: int, members: int, speakers: int) -> tuple[Relay, FrameTap, list[Endpoint]]:
    relay, tap = Relay(), FrameTap()
    relay.tap = tap
    talkers = []
    for r in range(1, rooms + 1):
        for m in range(members):
            ep = Endpoint(room_id=r, user_id=r * 1000 + m, send=_send)
            ep.can_speak = True
            ep.voice_bucket = Bucket(1e9, 1e9, time.monotonic())  # our load, not a flood
            relay.add(ep)
            if m < speakers:
                talkers.append(ep)
    return relay, tap, talkers


async def measure(relay: Relay, talkers: list[Endpoint], seconds: float, fps: float) -> dict:
    """Relay `fps` frames a second per speaker for `seconds` of relay time, as fast as the
    CPU allows (the frames carry the monotonic time they are relayed at)."""
    frames = int(seconds * fps)
    deliveries0 = sum(len(room) - 1 for room in relay.rooms.values())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(frames):
        for ep in talkers:
            relay.voice_in(ep, PACKET)
        await asyncio.sleep(0)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    deliveries = frames * len(talkers) * (deliveries0 // len(relay.rooms))
    return {"cpu_s": cpu1 - cpu0, "wall_s": wall1 - wall0, "deliveries": deliveries}


async def main_async(args) -> str:
    tmp = tempfile.mkdtemp(prefix="voiceroom-reccost-")
    rec.set_track_store(FileStore(tmp))
    relay, tap, talkers = build(args.rooms, args.members, args.speakers)
    rows = []
    for round_ in range(args.rounds):
        for recording in (0, args.recording):
            for r in range(1, recording + 1):
                tap.recordings.start(r, round_ + 1, time.time(), "opus")
            res = await measure(relay, talkers, args.seconds, args.fps)
            if recording:
                # Let the writer finish what this round queued (its CPU counts: it is
                # part of the process time of the next measure otherwise).
                cpu0 = time.process_time()
                for r in range(1, recording + 1):
                    tap.recordings.stop(r)
                tap.recordings.shutdown()
                res["cpu_s"] += time.process_time() - cpu0
            res["recording"] = recording
            res["us_per_delivery"] = res["cpu_s"] / res["deliveries"] * 1e6
            rows.append(res)
            print(
                f"round {round_ + 1} recording {recording:>2} rooms: "
                f"{res['us_per_delivery']:.3f} us CPU/delivery "
                f"({res['deliveries']} deliveries, {res['cpu_s']:.2f} s CPU)",
                flush=True,
            )
    none = [r["us_per_delivery"] for r in rows if not r["recording"]]
    recd = [r["us_per_delivery"] for r in rows if r["recording"]]
    med_none, med_rec = sorted(none)[len(none) // 2], sorted(recd)[len(recd) // 2]
    print(
        f"median: none {med_none:.3f}, {args.recording} rooms recording {med_rec:.3f} "
        f"us CPU/delivery: ratio {med_rec / med_none:.2f}"
    )
    return tmp


def _report_files(tmp: str) -> None:
    size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp))
    print(f"tracks written: {len(os.listdir(tmp))} files, {size} bytes in {tmp}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.recording_cost", description=__doc__)
    p.add_argument("--rooms", type=int, default=10)
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--speakers", type=int, default=2)
    p.add_argument("--recording", type=int, default=10, help="rooms recording")
    p.add_argument("--fps", type=float, default=50.0)
    p.add_argument("--seconds", type=float, default=4.0, help="relay seconds per measure")
    p.add_argument("--rounds", type=int, default=3)
    _report_files(asyncio.run(main_async(p.parse_args(argv))))


if __name__ == "__main__":
    main()
