"""Deliver the webhook outbox from a process of its own (optional: the nodes deliver too).

    python manage.py webhooks_worker

Useful to keep delivery going while no node runs, or with VOICEROOM_WEBHOOK_DELIVERY=off
on the nodes. Any number of workers and nodes can deliver together (webhooks/delivery.py).
SIGTERM or Ctrl-C stops it after the current round.
"""

from __future__ import annotations

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from realtime.presence import NODE_ID
from webhooks import delivery


class Command(BaseCommand):
    help = "Deliver pending webhook events until stopped."

    def handle(self, *args, **options) -> None:
        if not settings.VOICEROOM_WEBHOOK_URL:
            raise CommandError("VOICEROOM_WEBHOOK_URL is not set: there is nothing to deliver.")
        asyncio.run(self._run())

    async def _run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopping() -> None:
            stop.set()
            delivery.wake()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping)
        owner = delivery.new_owner(f"worker-{NODE_ID}")
        self.stdout.write(f"webhooks worker {owner} delivering to the configured URL")
        await delivery.run(owner, stop=stop)
