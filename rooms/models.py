from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

CAPACITY_MIN, CAPACITY_MAX, CAPACITY_DEFAULT = 2, 500, 50
SEATS_MIN, SEATS_MAX, SEATS_DEFAULT = 0, 20, 8


class Room(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    class Codec(models.TextChoices):
        # What every client of the room sends and expects; the server never decodes.
        OPUS = "opus"
        PCM16 = "pcm16"

    name = models.CharField(max_length=100)
    topic = models.CharField(max_length=200, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_rooms"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    capacity = models.PositiveSmallIntegerField(
        default=CAPACITY_DEFAULT,
        validators=[MinValueValidator(CAPACITY_MIN), MaxValueValidator(CAPACITY_MAX)],
    )
    seat_count = models.PositiveSmallIntegerField(
        default=SEATS_DEFAULT,
        validators=[MinValueValidator(SEATS_MIN), MaxValueValidator(SEATS_MAX)],
    )
    # Chosen at creation and never changed: clients pick their encoder from it.
    codec = models.CharField(max_length=8, choices=Codec.choices, default=Codec.OPUS)

    # True while a recording runs (rooms.services.recording); the Room shape shows it.
    recording = models.BooleanField(default=False)
    # Hashed like a user password; empty means the room is public.
    password_hash = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def is_private(self) -> bool:
        return bool(self.password_hash)

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    def set_password(self, raw: str | None) -> None:
        self.password_hash = make_password(raw) if raw else ""

    def check_password(self, raw: str | None) -> bool:
        if not self.password_hash:
            return True
        return bool(raw) and check_password(raw, self.password_hash)


class Membership(models.Model):
    """A user's standing in a room. The row outlives leaving, so bans and roles stick.

    `active` is true from a REST join until the member leaves, is kicked, is banned or
    times out: it is what "member" means in the contract, and what capacity counts.
    """

    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    active = models.BooleanField(default=True)
    muted = models.BooleanField(default=False)
    banned = models.BooleanField(default=False)
    ban_reason = models.CharField(max_length=200, blank=True)
    seat = models.PositiveSmallIntegerField(null=True, blank=True)
    joined_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["joined_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="membership_room_user"),
            # One member per seat: two racing seat_take calls cannot both win. NULLs are
            # distinct in MySQL, MariaDB and SQLite, so the unseated never collide.
            models.UniqueConstraint(fields=["room", "seat"], name="membership_room_seat"),
        ]
        indexes = [models.Index(fields=["room", "active"])]

    def __str__(self) -> str:
        return f"{self.user} in {self.room_id} ({self.role})"

    @property
    def is_moderator(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class Seat(models.Model):
    """A mic seat's own state. Who sits on it lives on Membership.seat."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="seats")
    index = models.PositiveSmallIntegerField()
    locked = models.BooleanField(default=False)
    muted = models.BooleanField(default=False)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["room", "index"], name="seat_room_index")]

    def __str__(self) -> str:
        return f"seat {self.index} of room {self.room_id}"


class SeatRequest(models.Model):
    """A listener's pending request for a mic seat, until a moderator accepts or refuses it.

    Only pending requests are stored: resolving or cancelling one deletes the row (the
    audit log keeps what moderators decided). So "one pending request per member" is a
    plain unique constraint, which MySQL and MariaDB enforce (they ignore conditional ones).
    """

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="seat_requests")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="seat_requests"
    )
    # The seat asked for; null means any free one.
    index = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="seat_request_room_user"),
        ]

    def __str__(self) -> str:
        return f"seat request of {self.user_id} in {self.room_id}"


class ModerationAction(models.Model):
    """The audit log: who did what to whom, when. Written by the services, read-only in admin."""

    class Action(models.TextChoices):
        ROOM_CREATE = "room.create"
        ROOM_UPDATE = "room.update"
        ROOM_CLOSE = "room.close"
        ROOM_OPEN = "room.open"
        MUTE = "mute"
        UNMUTE = "unmute"
        MUTE_ALL = "mute_all"
        UNMUTE_ALL = "unmute_all"
        KICK = "kick"
        BAN = "ban"
        UNBAN = "unban"
        ROLE = "role"
        SEAT_LOCK = "seat.lock"
        SEAT_UNLOCK = "seat.unlock"
        SEAT_MUTE = "seat.mute"
        SEAT_UNMUTE = "seat.unmute"
        SEAT_REMOVE = "seat.remove"
        SEAT_REQUEST_ACCEPT = "seat.request.accept"
        SEAT_REQUEST_REFUSE = "seat.request.refuse"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="audit")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    reason = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["room", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_id} on {self.target_id} in {self.room_id}"


class Report(models.Model):
    """A member's report of another, with the evidence frozen when it was made: the
    reported member's relayed voice of the 30 s before (a file in Django's storage) and
    their chat of the 5 minutes before."""

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reports_made"
    )
    reported = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reports_against"
    )
    reason = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)
    evidence_seconds = models.FloatField(default=0.0)
    evidence = models.FileField(upload_to="evidence/", blank=True)
    evidence_type = models.CharField(max_length=20, blank=True)  # audio/ogg, audio/wav
    chat = models.JSONField(default=list, blank=True)  # [{"ts", "text"}], oldest first
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["room", "-created_at"]),
            models.Index(fields=["status", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"report #{self.pk} on {self.reported_id} in {self.room_id}"


class Recording(models.Model):
    """One recording of a room, from start to stop; its tracks are one per speaker (and
    per node the speaker's voice went through)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="recordings")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    codec = models.CharField(max_length=10, default="opus")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"recording #{self.pk} of room {self.room_id}"


class RecordingTrack(models.Model):
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="tracks")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    file = models.FileField(max_length=255)
    node = models.CharField(max_length=64, blank=True)
    # Set when the track was closed cleanly; a track cut by a crash keeps 0 and is
    # measured from its file when listed.
    bytes = models.PositiveBigIntegerField(default=0)
    duration_s = models.FloatField(default=0.0)
    finished = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"track of {self.user_id} in recording {self.recording_id}"
