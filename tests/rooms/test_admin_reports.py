"""The admin's reports: open reports listed, evidence played in the page, acts taken."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from realtime import runtime
from realtime.ogg import parse_pages
from rooms import services
from rooms.models import Membership, Report
from tests.factories import RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

PACKET = bytes([0xF8]) + b"\x33" * 40
# What clients send: the audio convention's codec byte (0x02, Opus), then the packet.
# The evidence file holds the packet alone.
WIRE = b"\x02" + PACKET


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def report():
    room = RoomFactory()
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    for u in (alice, bob):
        services.member_join(room=room, user=u)
    evidence = runtime.current().tap.evidence
    now = time.monotonic()
    for i in range(100):  # two seconds of bob's voice, as the relay's tap saw it
        evidence.frame(room.pk, bob.pk, WIRE, now - 2 + i * 0.02)
    evidence.said(room.pk, bob.pk, "<b>nasty</b> words")
    return services.report_create(room=room, reporter=alice, user_id=bob.pk, reason="abuse")


def test_open_reports_are_listed_and_closed_ones_are_not_by_default(admin_client, report):
    page = admin_client.get(reverse("admin:rooms_report_changelist"))
    assert page.status_code == 200 and "abuse" in page.content.decode()
    Report.objects.filter(pk=report.pk).update(status="closed")
    page = admin_client.get(reverse("admin:rooms_report_changelist"))
    assert "abuse" not in page.content.decode()


def test_report_page_plays_the_evidence_and_shows_the_chat(admin_client, report):
    assert 1.9 <= report.evidence_seconds <= 2.1
    page = admin_client.get(reverse("admin:rooms_report_change", args=[report.pk]))
    html = page.content.decode()
    evidence_url = reverse("admin:rooms_report_evidence", args=[report.pk])
    assert f'<audio id="evidence-audio" controls preload="auto" src="{evidence_url}"' in html
    assert "&lt;b&gt;nasty&lt;/b&gt; words" in html  # escaped
    audio = admin_client.get(evidence_url)
    assert audio.status_code == 200 and audio["Content-Type"] == "audio/ogg"
    data = b"".join(audio.streaming_content)
    pages = list(parse_pages(data))
    assert all(p.crc_ok for p in pages)
    assert sum(pk == PACKET for p in pages[2:] for pk in p.packets) == 100


def test_ban_from_the_report_page_bans_through_the_service(admin_client, report):
    url = reverse("admin:rooms_report_act", args=[report.pk, "ban"])
    answer = admin_client.post(url, {"_reason": "abuse"})
    assert answer.status_code == 302
    member = Membership.objects.get(room=report.room, user=report.reported)
    assert member.banned and member.ban_reason == "abuse"
    admin_client.post(reverse("admin:rooms_report_act", args=[report.pk, "close"]))
    assert Report.objects.get(pk=report.pk).status == "closed"


def test_staff_without_permission_cannot_act(client, report):
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    url = reverse("admin:rooms_report_act", args=[report.pk, "kick"])
    assert client.post(url).status_code == 403
    assert Membership.objects.get(room=report.room, user=report.reported).active
