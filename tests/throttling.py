"""Helpers for tests of the throttles (voiceroom/throttling.py)."""

from __future__ import annotations


def set_rates(settings, **rates: str) -> None:
    """Override some throttle rates for one test (pytest-django's `settings` fixture; DRF
    reloads its settings, and the throttles read the rates when they count)."""
    current = settings.REST_FRAMEWORK
    settings.REST_FRAMEWORK = {
        **current,
        "DEFAULT_THROTTLE_RATES": {**current["DEFAULT_THROTTLE_RATES"], **rates},
    }
