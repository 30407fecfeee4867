"""The WeChat developer path's server side: docker/nginx-tls.conf serves HTTPS and WSS in
front of a real node with a certificate from scripts/self-signed-cert; it proxies exactly
as docker/nginx.conf does; compose gives the nodes the WeChat settings settings.py reads.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.clients.conftest import tool_missing
from tests.live import ROOT, Nginx, free_port

TLS_CONF = ROOT / "docker" / "nginx-tls.conf"


def locations(text: str) -> dict[str, str]:
    """`location` blocks by their match, their bodies with whitespace normalised."""
    return {
        m.group(1).strip(): " ".join(m.group(2).split())
        for m in re.finditer(r"location ([^{]+)\{([^}]*)\}", text)
    }


def test_tls_example_proxies_exactly_as_the_plain_one():
    plain = (ROOT / "docker" / "nginx.conf").read_text()
    tls = TLS_CONF.read_text()
    assert locations(tls) == locations(plain)
    assert re.search(r"upstream voiceroom_nodes \{[^}]*\}", tls).group(0) == re.search(
        r"upstream voiceroom_nodes \{[^}]*\}", plain
    ).group(0)
    assert "ssl_certificate /etc/nginx/certs/fullchain.pem;" in tls


def test_compose_passes_the_wechat_settings_to_the_nodes(settings):
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    env = compose["x-app-env"]
    for name in ("VOICEROOM_WECHAT_APP_ID", "VOICEROOM_WECHAT_APP_SECRET"):
        assert env[name] == f"${{{name}:-}}"
        assert hasattr(settings, name)  # the name settings.py reads
    tls = yaml.safe_load((ROOT / "docker" / "compose.tls.yaml").read_text())
    assert "./nginx-tls.conf:/etc/nginx/nginx.conf:ro" in tls["services"]["nginx"]["volumes"]


class TlsNginx(Nginx):
    CONF = TLS_CONF

    def __init__(self, upstream: str, folder: Path, certs: Path) -> None:
        super().__init__(upstream, folder)
        self.https_port = free_port()
        self.certs = certs

    def render(self) -> str:
        text = super().render()
        text, n = re.subn(
            r"listen 443 ssl default_server;",
            f"listen 127.0.0.1:{self.https_port} ssl default_server;",
            text,
        )
        assert n == 1, "docker/nginx-tls.conf changed shape"
        return text.replace("/etc/nginx/certs/", f"{self.certs}/")


@pytest.mark.processes
@pytest.mark.nginx
def test_nginx_tls_example_serves_https_and_wss(client_node, tmp_path):
    if shutil.which("openssl") is None:
        tool_missing("openssl is not installed: cannot make the self-signed certificate")
    certs = tmp_path / "certs"
    made = subprocess.run(
        [str(ROOT / "scripts" / "self-signed-cert")],
        env={"PATH": "/usr/bin:/bin", "CERT_DIR": str(certs)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    upstream = client_node.url.removeprefix("http://")
    nginx = TlsNginx(upstream, tmp_path, certs).start()
    try:
        trusted = ssl.create_default_context(cafile=str(certs / "fullchain.pem"))
        base = f"https://localhost:{nginx.https_port}"
        with urllib.request.urlopen(f"{base}/healthz", context=trusted, timeout=10) as r:
            assert r.status == 200
        # The certificate is the one the script made: an unconfigured client refuses it.
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{base}/healthz", timeout=10)

        # Plain HTTP answers a redirect to HTTPS.
        plain = socket.create_connection(("127.0.0.1", nginx.port), timeout=10)
        plain.sendall(b"GET /demo/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        head = plain.recv(4096).decode()
        plain.close()
        assert head.startswith("HTTP/1.1 308") and "Location: https://localhost/demo/" in head

        # A WebSocket handshake over TLS reaches the node (which then refuses the missing
        # ticket with a close code, after the upgrade, as the contract says).
        raw = socket.create_connection(("127.0.0.1", nginx.https_port), timeout=10)
        tls = trusted.wrap_socket(raw, server_hostname="localhost")
        tls.sendall(
            b"GET /ws/rooms/1/ HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        answer = tls.recv(4096).decode(errors="replace")
        tls.close()
        assert answer.startswith("HTTP/1.1 101"), answer + nginx.output()
    finally:
        nginx.stop()
