"""Format matching, table-driven: format id, kind, MIME wildcards, sizes, durations, and reasons."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from creative_sync.samples import display_creative, video_creative
from streams.library.formats import STANDARD_AGENT_URL
from streams.matching.logic import AgentFormats, TacticActivity, detected_agents, match, mime_matches, traits_of

DISPLAY_AGENT = AgentFormats("Daily News", format_kinds=frozenset({"image", "html5"}),
                             sizes=frozenset({(300, 250), (728, 90)}))
VIDEO_AGENT = AgentFormats("StreamCo", mime_types=frozenset({"video/*"}), max_duration_s=30)
LEGACY_AGENT = AgentFormats("Old Portal", format_ids=frozenset({(STANDARD_AGENT_URL, "display_160x600")}))
AUDIO_AGENT = AgentFormats("PodNet", format_kinds=frozenset({"audio_hosted"}))
ANY_IMAGE = AgentFormats("Images Inc", mime_types=frozenset({"image/*"}))

BANNER = display_creative("b1")  # 300x250 PNG, legacy format_id form
SKYSCRAPER = display_creative("s1", width=160, height=600)
LEADER_JPG = display_creative("l1", width=728, height=90, url="https://cdn.example.com/l1.jpg")
VIDEO_15 = video_creative("v1", duration_ms=15000)
VIDEO_60 = video_creative("v2", duration_ms=60000)
BILLBOARD = display_creative("bb", width=970, height=250)


@pytest.mark.parametrize("creative, agent, compatible, by, reason", [
    (BANNER, DISPLAY_AGENT, True, "format_kind", None),
    (LEADER_JPG, DISPLAY_AGENT, True, "format_kind", None),
    (BILLBOARD, DISPLAY_AGENT, False, None, "Size 970x250 not accepted by Daily News (accepts 300x250, 728x90)"),
    (VIDEO_15, DISPLAY_AGENT, False, None, "Video format not supported by display agent Daily News"),
    (VIDEO_15, VIDEO_AGENT, True, "mime_type", None),
    (VIDEO_60, VIDEO_AGENT, False, None, "Duration 60 s exceeds the 30 s StreamCo accepts"),
    (BANNER, VIDEO_AGENT, False, None, "Display format not supported by video agent StreamCo"),
    (SKYSCRAPER, LEGACY_AGENT, True, "format_id", None),
    (BANNER, LEGACY_AGENT, False, None, "Display format not supported by display agent Old Portal"),
    (BANNER, AUDIO_AGENT, False, None, "Display format not supported by audio agent PodNet"),
    (LEADER_JPG, ANY_IMAGE, True, "mime_type", None),
])
def test_matching(creative, agent, compatible, by, reason):
    verdict = match(traits_of(creative), agent)
    assert (verdict.compatible, verdict.by, verdict.reason) == (compatible, by, reason)


@pytest.mark.parametrize("pattern, mime, matches", [
    ("video/*", "video/mp4", True), ("video/*", "audio/mpeg", False), ("*/*", "image/png", True),
    ("image/png", "image/png", True), ("image/png", "image/gif", False), ("image/png", "image/*", True),
    ("VIDEO/MP4", "video/mp4", True),
])
def test_mime_wildcards(pattern, mime, matches):
    assert mime_matches(pattern, mime) is matches


def test_traits_come_from_format_kind_or_the_known_format_id_and_the_assets():
    video = traits_of(VIDEO_15)
    assert (video.format_kind, video.width, video.height, video.duration_s) == ("video_hosted", 1920, 1080, 15.0)
    assert "video/mp4" in video.mime_types and video.family == "video"
    banner = traits_of(BANNER)
    assert banner.format_id == (STANDARD_AGENT_URL, "display_300x250") and banner.format_kind == "image"
    assert banner.mime_types == {"image/png"} and (banner.width, banner.height) == (300, 250)


# -- auto-detection of a brand agent's sales agents -------------------------------------------------
NOW = datetime(2026, 11, 22, tzinfo=UTC)


def activity(agent: str, *, brand: str = "b1", campaign: str = "c1", active: bool = False, days_ago: float | None = None,
             synced_days_ago: float | None = None) -> TacticActivity:
    at = NOW - timedelta(days=days_ago) if days_ago is not None else None
    synced = NOW - timedelta(days=synced_days_ago) if synced_days_ago is not None else None
    return TacticActivity(brand, campaign, agent, active, created_at=at, updated_at=at, last_synced_at=synced)


@pytest.mark.parametrize("tactics,campaign,expected", [
    ([activity("live", active=True, days_ago=90)], None, ["live"]),
    ([activity("recent", days_ago=29)], None, ["recent"]),
    ([activity("stale", days_ago=31)], None, []),
    ([activity("synced", days_ago=60, synced_days_ago=3)], None, ["synced"]),
    ([activity("other-brand", brand="b2", active=True, days_ago=1)], None, []),
    ([activity("a", campaign="c1", active=True), activity("b", campaign="c2", active=True),
      activity("paused", campaign="c1", days_ago=1)], "c1", ["a"]),
])
def test_agents_are_detected_from_the_brand_agents_recent_tactic_activity(tactics, campaign, expected):
    assert detected_agents(tactics, {"b1"}, NOW, campaign_id=campaign) == expected
