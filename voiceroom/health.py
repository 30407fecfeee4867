"""Liveness, readiness and metrics for load balancers, orchestrators and Prometheus.

- `/healthz`: the process is alive and serving HTTP. Never touches a dependency, so a
  slow database does not make an orchestrator kill healthy nodes.
- `/readyz`: this node can do its work: the database answers `SELECT 1` and a message
  makes a round trip through the channel layer (for Redis, a real PUBLISH/SUBSCRIBE).
  A load balancer takes the node out of rotation on 503.
- `/metrics`: everything on prometheus_client's default registry, in the text format.
  Other modules register their own metrics there; this module adds the process and
  platform collectors' neighbours: node identity, readiness results, rooms by status.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable

import django
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from realtime.presence import NODE_ID

logger = logging.getLogger(__name__)

# Each readiness check gives up after this long. Two seconds is well under the usual
# probe timeouts (docker, kubernetes, nginx), so a hung dependency yields a 503 rather
# than a probe timeout that says nothing about which dependency hung.
CHECK_TIMEOUT_S = 2.0


# --- liveness ---------------------------------------------------------------------------


@csrf_exempt  # read-only; a wrong method must get 405, not a CSRF 403
@never_cache
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


# --- readiness --------------------------------------------------------------------------


def _ping_database() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        row = cursor.fetchone()
    if not row or row[0] != 1:
        raise RuntimeError(f"SELECT 1 answered {row!r}")


async def check_database() -> None:
    # sync_to_async (thread-sensitive) runs in the request's own thread, where Django
    # opens and closes the request's connection; a hung query only holds this request.
    await sync_to_async(_ping_database)()


async def check_channel_layer() -> None:
    """Send a message to a fresh channel of this node and receive it back."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    # Every layer this project configures (in-memory, Redis pub/sub) takes a prefix; the
    # stubs follow BaseChannelLayer, which declares none.
    channel = await layer.new_channel(prefix="readyz.")  # type: ignore[call-arg]
    nonce = uuid.uuid4().hex
    try:
        await layer.send(channel, {"type": "readyz.ping", "nonce": nonce})
        message = await layer.receive(channel)
    finally:
        await _forget_channel(layer, channel)
    if message.get("nonce") != nonce:
        raise RuntimeError("the channel layer returned a different message")


async def _forget_channel(layer, channel: str) -> None:
    """Drop the probe channel's subscription on the Redis pub/sub layer.

    Channels has no `delete_channel()`; the pub/sub layer unsubscribes when a pending
    `receive()` is cancelled (see channels_redis.pubsub). Without this, every probe would
    leave one SUBSCRIBE behind for the life of the process.
    """
    try:
        from channels_redis.pubsub import RedisPubSubChannelLayer
    except ImportError:  # pragma: no cover - channels_redis is a dependency
        return
    if not isinstance(layer, RedisPubSubChannelLayer):
        return
    waiter = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)
    waiter.cancel()
    try:
        await waiter
    except (asyncio.CancelledError, Exception):
        pass


READY_CHECKS: dict[str, Callable[[], Awaitable[None]]] = {
    "database": check_database,
    "channel_layer": check_channel_layer,
}

_check_ok = Gauge(
    "voiceroom_ready_check_ok",
    "1 if the last readiness check of this dependency passed, else 0.",
    ["check"],
)
_check_seconds = Gauge(
    "voiceroom_ready_check_seconds",
    "How long the last readiness check of this dependency took.",
    ["check"],
)


async def _run_check(name: str, check: Callable[[], Awaitable[None]]) -> dict:
    started = time.perf_counter()
    result: dict = {"ok": True}
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_S)
    except TimeoutError:
        result = {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_S:g} s"}
        logger.warning("readyz: %s did not answer within %s s", name, CHECK_TIMEOUT_S)
    except Exception as exc:
        # The class name is enough for an operator to know where to look; the full error
        # (which may name hosts) goes to the log, not to whoever can reach /readyz.
        result = {"ok": False, "error": type(exc).__name__}
        logger.warning("readyz: %s failed: %r", name, exc)
    elapsed = time.perf_counter() - started
    result["latency_ms"] = round(elapsed * 1000, 1)
    _check_ok.labels(check=name).set(1 if result["ok"] else 0)
    _check_seconds.labels(check=name).set(elapsed)
    return result


@csrf_exempt  # read-only; a wrong method must get 405, not a CSRF 403
@never_cache
@require_GET
async def readyz(request: HttpRequest) -> JsonResponse:
    names = list(READY_CHECKS)
    results = await asyncio.gather(*(_run_check(n, READY_CHECKS[n]) for n in names))
    checks = dict(zip(names, results, strict=True))
    ready = all(r["ok"] for r in results)
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "node": NODE_ID, "checks": checks},
        status=200 if ready else 503,
    )


# --- metrics ----------------------------------------------------------------------------


class VoiceroomCollector(Collector):
    """Metrics read at scrape time: this node's identity and the rooms in the database.

    Room counts are global (every node reports the same numbers): aggregate with max(),
    not sum(). A scrape while the database is down still answers, without those series.
    """

    def describe(self) -> Iterable[Metric]:
        # Declared without samples so that registering never queries the database.
        yield InfoMetricFamily("voiceroom_node", "This node's identity and backends.")
        yield GaugeMetricFamily("voiceroom_rooms", "Rooms in the database, by status.")
        yield GaugeMetricFamily(
            "voiceroom_active_members", "Active room memberships in the database."
        )

    def collect(self) -> Iterable[Metric]:
        db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
        yield InfoMetricFamily(
            "voiceroom_node",
            "This node's identity and backends.",
            value={
                "node": NODE_ID,
                "database": db,
                "channel_layer": layer,
                "django": django.get_version(),
                "python": platform.python_version(),
            },
        )
        try:
            yield from self._database_metrics()
        except Exception as exc:
            logger.debug("metrics: database metrics skipped: %r", exc)

    @staticmethod
    def _database_metrics() -> list[Metric]:
        from django.db.models import Count

        from rooms.models import Membership, Room

        by_status = dict(Room.objects.order_by().values_list("status").annotate(n=Count("id")))
        rooms = GaugeMetricFamily(
            "voiceroom_rooms", "Rooms in the database, by status.", labels=["status"]
        )
        for status in Room.Status.values:
            rooms.add_metric([status], by_status.get(status, 0))
        members = GaugeMetricFamily(
            "voiceroom_active_members",
            "Active room memberships in the database.",
            value=Membership.objects.filter(active=True).count(),
        )
        return [rooms, members]


def _register_once(collector: Collector) -> None:
    try:
        REGISTRY.register(collector)
    except ValueError:  # already registered (module imported twice, e.g. by a reloader)
        pass


_register_once(VoiceroomCollector())


@csrf_exempt  # read-only; a wrong method must get 405, not a CSRF 403
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    # A sync view: collectors may query the database. Django runs it in a worker thread
    # under ASGI. The default REGISTRY already carries prometheus_client's process, platform
    # and garbage-collector collectors.
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
