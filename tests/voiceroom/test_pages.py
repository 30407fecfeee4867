"""The pages a newcomer opens first: the node's root address and the API docs.

The docs page is also rendered in a real Chromium without network access in
tests/clients/test_demo_browser.py::test_api_docs_render_without_internet.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.test import Client


class _Assets(HTMLParser):
    """Every URL the page makes the browser load: scripts, stylesheets, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("script", "img", "iframe") and found.get("src"):
            self.urls.append(found["src"])
        if tag == "link" and found.get("href"):
            self.urls.append(found["href"])


def test_the_root_address_sends_people_to_the_demo():
    response = Client().get("/")

    assert response.status_code == 302
    assert response["Location"] == "/demo/"
    assert Client().get("/", follow=True).status_code == 200


@pytest.mark.django_db
def test_api_docs_load_only_same_origin_assets_and_each_answers():
    client = Client()
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    parser = _Assets()
    parser.feed(html)
    assert parser.urls, "the docs page loads no asset at all"
    names = {urlsplit(url).path.rsplit("/", 1)[-1] for url in parser.urls}
    assert {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"} <= names
    for url in parser.urls:
        parts = urlsplit(url)
        # Same origin: a path on this node, never another host (no CDN, no @latest).
        assert not parts.scheme and not parts.netloc, url
        assert parts.path.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert b"".join(asset.streaming_content if asset.streaming else [asset.content]), url
    assert not re.search(r"https?://|cdn\.", html), "the page names another host"
    # What Swagger UI then fetches: the schema, from this node too.
    assert client.get("/api/schema/").status_code == 200
