#!/usr/bin/env python
"""Django's command line for voiceroom.

`make run` (scripts/run-dev) keeps a development node's settings in `.env.dev` next to
this file: a random secret key and DJANGO_DEBUG=1. So that the commands the README and
the `make run` banner give (`manage.py createsuperuser`...) work as written in another
shell, manage.py reads that file, under one rule:

- only when the environment sets no DJANGO_SECRET_KEY. An environment that sets one is
  configured on purpose (every production node: it cannot start without one) and is
  used as it is; .env.dev is then ignored entirely, DJANGO_DEBUG included;
- only for variables the environment does not set already;
- only manage.py reads it, never the servers (daphne or uvicorn load voiceroom.asgi),
  so a node cannot start on the development key by accident; the docker image leaves
  `.env.*` out, and a note on stderr says when the file was used.
"""

import os
import sys
from pathlib import Path

DEV_ENV = Path(__file__).resolve().parent / ".env.dev"


def load_dev_env() -> None:
    if os.environ.get("DJANGO_SECRET_KEY") or not DEV_ENV.is_file():
        return
    import environ

    os.environ.pop("DJANGO_SECRET_KEY", None)  # set but empty counts as not set
    environ.Env.read_env(DEV_ENV, overwrite=False)
    print(
        f"manage.py: DJANGO_SECRET_KEY is not set: using the development settings in {DEV_ENV}",
        file=sys.stderr,
    )


# What Django answers without settings; every other command needs them.
NO_SETTINGS_NEEDED = {"help", "--help", "-h", "version", "--version"}


def check_settings(argv: list[str]) -> None:
    """Stop with the settings' own message (e.g. "DJANGO_SECRET_KEY is not set...")
    when they cannot load. Django would record it and go on, and a built-in command
    such as makemigrations then fails with an unrelated AppRegistryNotReady."""
    if len(argv) < 2 or argv[1] in NO_SETTINGS_NEEDED:
        return
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS  # noqa: B018 (loads the settings module)
    except ImproperlyConfigured as exc:
        sys.exit(f"manage.py: {exc}")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceroom.settings")
    load_dev_env()
    check_settings(sys.argv)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
