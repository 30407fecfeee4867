#!/bin/sh
# Container entry point: wait for the database, migrate if asked, then exec the command
# (by default the uvicorn node; see the Dockerfile's CMD).
#
#   VOICEROOM_MIGRATE=1    run `manage.py migrate --noinput` first. Set it on ONE service
#                          (compose's `migrate`), not on every node: concurrent migrations
#                          of one database race each other.
#   VOICEROOM_DB_WAIT_S    seconds to wait for the database to answer (default 60).
set -eu

python - <<'PY'
import os
import sys
import time

import django

django.setup()
from django.db import connections  # noqa: E402

limit = float(os.environ.get("VOICEROOM_DB_WAIT_S", "60"))
deadline = time.monotonic() + limit
while True:
    try:
        connections["default"].ensure_connection()
        connections["default"].close()
        break
    except Exception as exc:  # OperationalError while the server starts
        if time.monotonic() >= deadline:
            print(f"entrypoint: database not answering after {limit:g} s: {exc}", file=sys.stderr)
            sys.exit(1)
        print(f"entrypoint: waiting for the database ({type(exc).__name__})", file=sys.stderr)
        time.sleep(1)
print("entrypoint: database answers", file=sys.stderr)
PY

if [ "${VOICEROOM_MIGRATE:-0}" = "1" ]; then
  python manage.py migrate --noinput
fi

exec "$@"
