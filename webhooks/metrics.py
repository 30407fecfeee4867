"""Prometheus metrics of events and webhook delivery.

- voiceroom_events_total{type}: events of the webhook list committed by this process,
  counted whether or not webhooks are configured (moderation acts are the
  `moderation.*` types);
- voiceroom_webhook_attempts_total{outcome}: delivery attempts by this process
  (delivered, retry, failed);
- voiceroom_webhook_backlog{status}: pending and failed events in the outbox, and
  voiceroom_webhook_oldest_pending_seconds (both read from the database at scrape time,
  so every node reports the same value: aggregate with max()).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

logger = logging.getLogger(__name__)

_events: dict[str, int] = {}
_attempts: dict[str, int] = {"delivered": 0, "retry": 0, "failed": 0}


def event_recorded(type: str) -> None:
    _events[type] = _events.get(type, 0) + 1


def attempt(outcome: str, n: int = 1) -> None:
    _attempts[outcome] += n


class WebhookCollector(Collector):
    def describe(self) -> Iterable[Metric]:
        # Without samples, so that registering never queries the database.
        yield CounterMetricFamily("voiceroom_events", "Events committed by this process.")
        yield CounterMetricFamily(
            "voiceroom_webhook_attempts", "Webhook delivery attempts by this process."
        )
        yield GaugeMetricFamily("voiceroom_webhook_backlog", "Events in the webhook outbox.")
        yield GaugeMetricFamily(
            "voiceroom_webhook_oldest_pending_seconds", "Age of the oldest pending event."
        )

    def collect(self) -> Iterable[Metric]:
        from webhooks.services import TYPES

        events = CounterMetricFamily(
            "voiceroom_events", "Events committed by this process.", labels=["type"]
        )
        for type in sorted(TYPES):
            events.add_metric([type], _events.get(type, 0))
        yield events
        attempts = CounterMetricFamily(
            "voiceroom_webhook_attempts",
            "Webhook delivery attempts by this process.",
            labels=["outcome"],
        )
        for outcome, n in _attempts.items():
            attempts.add_metric([outcome], n)
        yield attempts
        try:
            yield from self._database_metrics()
        except Exception as exc:  # the database is down: the rest of the scrape answers
            logger.debug("metrics: webhook backlog skipped: %r", exc)

    @staticmethod
    def _database_metrics() -> list[Metric]:
        from django.db.models import Count, Min
        from django.utils import timezone

        from webhooks.models import Event

        counts = dict(
            Event.objects.filter(status__in=[Event.Status.PENDING, Event.Status.FAILED])
            .order_by()
            .values_list("status")
            .annotate(n=Count("id"))
        )
        backlog = GaugeMetricFamily(
            "voiceroom_webhook_backlog", "Events in the webhook outbox.", labels=["status"]
        )
        for status in (Event.Status.PENDING, Event.Status.FAILED):
            backlog.add_metric([status], counts.get(status, 0))
        oldest = Event.objects.filter(status=Event.Status.PENDING).aggregate(t=Min("created_at"))
        age = (timezone.now() - oldest["t"]).total_seconds() if oldest["t"] else 0.0
        return [
            backlog,
            GaugeMetricFamily(
                "voiceroom_webhook_oldest_pending_seconds",
                "Age of the oldest pending event.",
                value=age,
            ),
        ]


_registered = False


def register() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(WebhookCollector())
        _registered = True
