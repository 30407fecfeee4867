from __future__ import annotations

import pytest

SECRET = "test-webhook-secret"


@pytest.fixture
def webhooks_on(settings):
    """Webhooks configured (to a port nobody listens on until a test says otherwise),
    with short retry delays."""
    settings.VOICEROOM_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    settings.VOICEROOM_WEBHOOK_SECRET = SECRET
    settings.VOICEROOM_WEBHOOK_TIMEOUT_S = 2.0
    settings.VOICEROOM_WEBHOOK_BACKOFF_MIN_S = 0.05
    settings.VOICEROOM_WEBHOOK_BACKOFF_MAX_S = 0.2
    settings.VOICEROOM_WEBHOOK_POLL_S = 0.05
    return settings
