"""REST set-up for target voiceroom: users, tokens, rooms (threads, small concurrency;
never measured)."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class RestError(Exception):
    pass


class Rest:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self.retries = 0  # 429/503 answers retried (set-up only)

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Token {token}"
        for attempt in range(6):
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            finally:
                conn.close()
            if resp.status == 429 and attempt < 5:
                wait = resp.getheader("Retry-After") or "1"
                self.retries += 1
                time.sleep(min(10.0, max(0.2, float(wait) if wait.isdigit() else 1.0)))
                continue
            if resp.status == 503 and attempt < 5:  # e.g. database_unavailable: "try again"
                self.retries += 1
                time.sleep(0.2 * (attempt + 1))
                continue
            if resp.status >= 400:
                raise RestError(f"{method} {path}: HTTP {resp.status} {raw[:300]!r}")
            return json.loads(raw) if raw else None
        raise RestError(f"{method} {path}: still refused after retries")


@dataclass
class BenchUser:
    username: str
    password: str
    token: str
    id: int
    node: int = 0


def load_user_cache(path: str | None) -> list[BenchUser]:
    if not path or not os.path.exists(path):
        return []
    try:
        return [BenchUser(**u) for u in json.loads(Path(path).read_text())]
    except (ValueError, TypeError):
        return []


def save_user_cache(path: str | None, users: list[BenchUser]) -> None:
    if path:
        tmp = f"{path}.tmp"
        Path(tmp).write_text(json.dumps([asdict(u) for u in users]))
        os.replace(tmp, path)


def register(rest: Rest, username: str) -> BenchUser:
    password = secrets.token_urlsafe(18) + "-Vr9"
    ans = rest.call(
        "POST",
        "/api/auth/register",
        {"username": username, "password": password, "display_name": username},
    )
    token = ans.get("token")
    if not token:  # the contract says register answers with a token; log in otherwise
        ans = rest.call("POST", "/api/auth/login", {"username": username, "password": password})
        token = ans["token"]
    return BenchUser(username, password, token, int(ans["user"]["id"]))
