"""Upload recording tracks left in a spool directory by a node that died.

    python manage.py recover_spooled_tracks [--spool DIR]

Only for storages without local paths (S3...), where a track grows in
VOICEROOM_RECORDING_SPOOL until it is closed. Every node already does this for its own
spool once a minute; the command is for a spool no node runs on any more (a dead node's
volume, mounted elsewhere). Files still being written (their lock is held) are left alone.
"""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError

from rooms import services
from rooms.services.recording import spool_dir


class Command(BaseCommand):
    help = "Upload spooled recording tracks whose writer died, and remove them."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--spool",
            default=None,
            help="the spool directory (default: VOICEROOM_RECORDING_SPOOL, else the temp dir)",
        )

    def handle(self, *args, **options) -> None:
        spool = options["spool"] or spool_dir()
        if not os.path.isdir(spool):
            raise CommandError(f"{spool} is not a directory")
        uploaded = services.recording_spool_recover(spool=spool)
        self.stdout.write(f"{uploaded} spooled track(s) uploaded from {spool}")
