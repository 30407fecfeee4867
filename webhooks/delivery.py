"""Delivery of the outbox: signed POSTs, one event per room at a time, retried.

A round (`deliver_round`):
1. claim: the oldest pending event of each room (its head) that is due and not held by
   a live lease is leased to this process, in a short transaction (SELECT ... FOR UPDATE
   SKIP LOCKED where the database has it: two nodes never lease the same row);
2. POST each claimed event's stored body, rooms in parallel (a small thread pool; the
   standard library's HTTP client, so no new dependency);
3. finish: a 2xx marks it delivered; anything else schedules a retry with a doubling
   delay, or marks it failed once its retry period is over.
A room's next event is its head only once the previous one is no longer pending, which
is per-room order. A process killed between 2 and 3 leaves a lease that expires; the
event is then sent again (at least once: receivers deduplicate on `id`).

Every process's runtime runs `run_job` (webhooks/apps.py); `manage.py webhooks_worker`
runs the same loop alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from realtime.runtime import Runtime
from webhooks import metrics
from webhooks.models import Event

logger = logging.getLogger(__name__)

CLAIM_LIMIT = 16
HEADS_CHUNK = 1000
SIGNATURE_HEADER = "X-Voiceroom-Signature"
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook")
PURGE_EVERY_S = 3600.0


def sign(body: bytes, secret: str) -> str:
    """The X-Voiceroom-Signature value of `body`: sha256=<HMAC-SHA256 hex>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff_s(attempts: int) -> float:
    """Delay before the next attempt after `attempts` failed ones."""
    low = settings.VOICEROOM_WEBHOOK_BACKOFF_MIN_S
    high = settings.VOICEROOM_WEBHOOK_BACKOFF_MAX_S
    return float(min(high, low * 2 ** min(attempts - 1, 40)))


@dataclass(frozen=True)
class Claimed:
    pk: int
    room_id: int
    body: str


def _lease_s() -> float:
    return 3 * settings.VOICEROOM_WEBHOOK_TIMEOUT_S + 5


def claim(owner: str, limit: int = CLAIM_LIMIT) -> list[Claimed]:
    """Lease to `owner` the due head of each room with pending events (at most `limit`)."""
    now = timezone.now()
    heads = list(
        Event.objects.filter(status=Event.Status.PENDING)
        .order_by()
        .values("room_id")
        .annotate(head=Min("id"))
        .order_by("head")
        .values_list("head", flat=True)
    )
    if not heads:
        return []
    skip_locked = connection.features.has_select_for_update_skip_locked
    rows: list[Event] = []
    with transaction.atomic():
        # By chunks: rooms whose head waits for a retry do not hide the others.
        for start in range(0, len(heads), HEADS_CHUNK):
            rows += list(
                Event.objects.select_for_update(skip_locked=skip_locked)
                .filter(pk__in=heads[start : start + HEADS_CHUNK])
                .filter(status=Event.Status.PENDING, next_attempt_at__lte=now)
                .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
                .order_by("id")
                .only("id", "room_id", "body")[: limit - len(rows)]
            )
            if len(rows) >= limit:
                break
        if rows:
            Event.objects.filter(pk__in=[r.pk for r in rows]).update(
                lease_until=now + timedelta(seconds=_lease_s()), lease_owner=owner
            )
    return [Claimed(r.pk, r.room_id, r.body) for r in rows]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a redirect is a refusal: the body is never re-sent elsewhere


_opener = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: str, secret: str, timeout: float) -> str:
    """POST one body; returns "" on a 2xx, else what went wrong."""
    data = body.encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "voiceroom-webhooks/1",
            SIGNATURE_HEADER: sign(data, secret),
        },
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(65536)
            if 200 <= response.status < 300:
                return ""
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # refused, reset, timeout, DNS, bad URL
        return f"{type(exc).__name__}: {exc}"[:300]


def finish(owner: str, results: list[tuple[Claimed, str]]) -> None:
    """Record the outcome of each attempt (only for events this owner still holds)."""
    now = timezone.now()
    # The 2xx ones in one statement (the usual case); each refusal on its own.
    delivered = [claimed.pk for claimed, error in results if not error]
    if delivered:
        n = Event.objects.filter(
            pk__in=delivered, status=Event.Status.PENDING, lease_owner=owner
        ).update(
            status=Event.Status.DELIVERED,
            delivered_at=now,
            attempts=F("attempts") + 1,
            lease_until=None,
            lease_owner="",
            last_error="",
        )
        metrics.attempt("delivered", n)
    for claimed, error in results:
        if not error:
            continue
        with transaction.atomic():
            event = (
                Event.objects.select_for_update()
                .filter(pk=claimed.pk, status=Event.Status.PENDING, lease_owner=owner)
                .first()
            )
            if event is None:  # replayed, or the lease expired and another node took it
                continue
            event.attempts += 1
            event.lease_until = None
            event.lease_owner = ""
            if now >= event.give_up_at:
                event.status = Event.Status.FAILED
                event.last_error = error
                metrics.attempt("failed")
                logger.error(
                    "webhook %s (room %s) failed for good after %d attempts: %s",
                    event.pk,
                    event.room_id,
                    event.attempts,
                    error,
                )
            else:
                event.next_attempt_at = now + timedelta(seconds=backoff_s(event.attempts))
                event.last_error = error
                metrics.attempt("retry")
                logger.warning(
                    "webhook %s (room %s) attempt %d refused: %s",
                    event.pk,
                    event.room_id,
                    event.attempts,
                    error,
                )
            event.save()


def purge(keep_days: int) -> int:
    if keep_days <= 0:
        return 0
    cutoff = timezone.now() - timedelta(days=keep_days)
    deleted, _ = Event.objects.filter(
        status=Event.Status.DELIVERED, delivered_at__lt=cutoff
    ).delete()
    return deleted


async def deliver_round(owner: str) -> int:
    """One claim, its POSTs and their outcomes; returns how many events were attempted."""
    claimed = await database_sync_to_async(claim)(owner)
    if not claimed:
        return 0
    url = settings.VOICEROOM_WEBHOOK_URL
    secret = settings.VOICEROOM_WEBHOOK_SECRET
    timeout = settings.VOICEROOM_WEBHOOK_TIMEOUT_S
    loop = asyncio.get_running_loop()
    errors = await asyncio.gather(
        *(loop.run_in_executor(_POOL, post, url, c.body, secret, timeout) for c in claimed)
    )
    await database_sync_to_async(finish)(owner, list(zip(claimed, errors, strict=True)))
    return len(claimed)


# Wake-ups: an event committed in this process wakes its loop at once, instead of at the
# next poll. From any thread (services run in worker threads).
_wake_lock = threading.Lock()
_wakers: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []


def wake() -> None:
    with _wake_lock:
        wakers = list(_wakers)
    for loop, event in wakers:
        if not loop.is_closed():
            loop.call_soon_threadsafe(event.set)


async def run(owner: str, *, stop: asyncio.Event | None = None) -> None:
    """Deliver until cancelled (or until `stop` is set)."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    with _wake_lock:
        _wakers.append((loop, woken))
    next_purge = loop.time()
    try:
        while stop is None or not stop.is_set():
            try:
                sent = await deliver_round(owner)
                if loop.time() >= next_purge:
                    next_purge = loop.time() + PURGE_EVERY_S
                    await database_sync_to_async(purge)(settings.VOICEROOM_WEBHOOK_KEEP_DAYS)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is down: try again at the next poll
                logger.warning("webhook delivery round failed; retrying", exc_info=True)
                sent = 0
            if sent:
                continue  # the rooms' next events may be due now
            woken.clear()
            try:
                await asyncio.wait_for(woken.wait(), settings.VOICEROOM_WEBHOOK_POLL_S)
            except TimeoutError:
                pass
    finally:
        with _wake_lock:
            _wakers.remove((loop, woken))


def new_owner(node_id: str) -> str:
    """A lease owner name: the node, plus a token per process start."""
    return f"{node_id}:{secrets.token_hex(4)}"[:80]


async def run_job(rt: Runtime) -> None:
    """The runtime's background job (realtime.runtime.register_job)."""
    if not settings.VOICEROOM_WEBHOOK_URL or not settings.VOICEROOM_WEBHOOK_DELIVERY:
        return
    await run(new_owner(rt.node_id))
