"""The refusal of one client frame (validators, guards and handlers raise it)."""

from __future__ import annotations


class FrameError(Exception):
    """A client frame was refused; the socket stays open and gets an `error` frame."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
