"""The parameters of one load-generator run (`bench.loadgen`'s options)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.client import PAYLOAD_MIN


@dataclass
class LoadConfig:
    target: str = "voiceroom"  # "voiceroom" | "bare"
    urls: list[str] = field(default_factory=lambda: ["http://127.0.0.1:8000"])
    rooms: int = 10
    members: int = 20
    speakers: int = 2
    fps: float = 50.0
    frame_bytes: int = 120
    duration: float = 20.0
    warmup: float = 5.0
    grace: float = 1.0
    server_pids: list[int] = field(default_factory=list)
    redis_pid: int | None = None
    json_path: str | None = None
    label: str = ""
    setup_concurrency: int = 4
    connect_concurrency: int = 32
    user_cache: str | None = None
    progress: bool = True
    # Listeners per room that stop reading when the load starts (never speakers).
    stalled: int = 0
    # Scrape /metrics around the window: None = only for target voiceroom.
    metrics: bool | None = None
    # > 0: a time series (the soak), one row per `interval` seconds through the warm-up
    # and the window: throughput, loss, latency, RSS, CPU, /metrics drops (bench.soak).
    interval: float = 0.0
    # Rooms (the first N) whose recording is started before the load (issue 16).
    record_rooms: int = 0

    def want_metrics(self) -> bool:
        return self.target == "voiceroom" if self.metrics is None else self.metrics

    def is_stalled(self, index: int) -> bool:
        """The last `stalled` members of each room stall; speakers are the first ones."""
        return index % self.members >= self.members - self.stalled

    def validate(self) -> None:
        if self.target not in ("voiceroom", "bare"):
            raise ValueError("target must be voiceroom or bare")
        if self.frame_bytes < PAYLOAD_MIN:
            raise ValueError(f"--frame-bytes must be >= {PAYLOAD_MIN}")
        if self.members < 2 or self.rooms < 1:
            raise ValueError("need >= 1 room and >= 2 members")
        if not 1 <= self.speakers <= self.members:
            raise ValueError("--speakers must be between 1 and --members")
        if self.fps <= 0 or self.duration <= 0 or self.warmup < 0:
            raise ValueError("--fps and --duration must be > 0, --warmup >= 0")
        if not self.urls:
            raise ValueError("at least one --url")
        if not 0 <= self.stalled <= self.members - self.speakers:
            raise ValueError("--stalled must be between 0 and --members minus --speakers")
        if self.interval < 0:
            raise ValueError("--interval must be >= 0")
        if not 0 <= self.record_rooms <= self.rooms:
            raise ValueError("--record-rooms must be between 0 and --rooms")
