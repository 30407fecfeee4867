"""The static files finder for clients/: what browsers load, and nothing else.

clients/ also holds the SDK's tests, its node_modules (after `npm ci`), package files,
READMEs and the mini-program example; none of that is served or collected.
"""

from __future__ import annotations

from django.contrib.staticfiles.finders import FileSystemFinder
from django.contrib.staticfiles.utils import matches_patterns

NOT_SERVED = [
    "node_modules",
    "test",
    "testlib",
    "miniprogram",
    "package.json",
    "package-lock.json",
    "*.md",
]


class ClientsFinder(FileSystemFinder):
    """Django's FileSystemFinder over STATICFILES_DIRS, minus NOT_SERVED."""

    def find(self, path, find_all=False, **kwargs):
        if any(matches_patterns(part, NOT_SERVED) for part in path.replace("\\", "/").split("/")):
            return []
        return super().find(path, find_all=find_all, **kwargs)

    def list(self, ignore_patterns):
        return super().list([*(ignore_patterns or []), *NOT_SERVED])
