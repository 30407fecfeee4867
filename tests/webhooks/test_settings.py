"""Webhook settings: the secret has no default once a URL is set."""

from __future__ import annotations

from tests.voiceroom.test_settings import KEY, run_python


def test_a_webhook_url_without_a_secret_refuses_to_start():
    done = run_python(
        "import django; django.setup()",
        DJANGO_SECRET_KEY=KEY,
        VOICEROOM_WEBHOOK_URL="https://backend.example.com/hook",
    )
    assert done.returncode != 0
    assert "VOICEROOM_WEBHOOK_SECRET" in done.stderr


def test_with_both_it_starts_and_reads_them():
    done = run_python(
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.VOICEROOM_WEBHOOK_URL, s.VOICEROOM_WEBHOOK_SECRET, s.VOICEROOM_WEBHOOK_DELIVERY)",
        DJANGO_SECRET_KEY=KEY,
        VOICEROOM_WEBHOOK_URL="https://backend.example.com/hook",
        VOICEROOM_WEBHOOK_SECRET="s3",
        VOICEROOM_WEBHOOK_DELIVERY="off",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["https://backend.example.com/hook", "s3", "False"]
