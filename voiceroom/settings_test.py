"""Settings for the test suite: the real settings, with a throwaway key when none is set."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production-" + "x" * 20)
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")

from voiceroom.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only

# In-process socket tests share their event loop with synchronous test code, whose pauses
# are not overload: no shedding here (tests/realtime/test_relay.py tests it directly).
VOICEROOM_SHED_AFTER_LAG_MS = 0
