"""The creative formats creative-sync knows: standard display sizes, hosted and VAST video, audio,
native and HTML5, as AdCP `Format` objects with their canonical kind (pure data).

Served by list_creative_formats; the matcher uses the same catalogue to decide which sales
agents can run a creative (by format id, kind, asset MIME type, dimensions or duration).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The agent URL that names our own standard formats (format_id.agent_url).
STANDARD_AGENT_URL = "https://creative.adcontextprotocol.org"


@dataclass(frozen=True)
class KnownFormat:
    format_id: str
    name: str
    kind: str  # AdCP canonical format kind (enums/canonical-format-kind)
    mime_types: tuple[str, ...]
    width: int | None = None
    height: int | None = None
    max_duration_s: float | None = None
    asset_id: str = "main"
    asset_type: str = "image"
    description: str = ""
    extra_assets: tuple[dict[str, Any], ...] = field(default=())

    def as_adcp(self, agent_url: str = STANDARD_AGENT_URL) -> dict[str, Any]:
        format_ = {
            "format_id": {"agent_url": agent_url, "id": self.format_id},
            "name": self.name,
            "description": self.description or self.name,
            "canonical": {"kind": self.kind},
            "assets": [{"item_type": "individual", "asset_id": self.asset_id, "asset_type": self.asset_type,
                        "required": True}, *self.extra_assets],
        }
        if self.width and self.height:
            format_["renders"] = [{"role": "primary", "dimensions": {"width": self.width, "height": self.height}}]
        return format_


_IMAGE = ("image/png", "image/jpeg", "image/gif", "image/webp")
_DISPLAY_SIZES = [(300, 250, "Medium Rectangle"), (728, 90, "Leaderboard"), (160, 600, "Wide Skyscraper"),
                  (300, 600, "Half Page"), (320, 50, "Mobile Banner"), (970, 250, "Billboard")]

FORMATS: tuple[KnownFormat, ...] = (
    *(KnownFormat(f"display_{w}x{h}", f"{label} {w}x{h}", "image", _IMAGE, w, h,
                  description=f"Static image banner, {w}x{h}") for w, h, label in _DISPLAY_SIZES),
    *(KnownFormat(f"html5_{w}x{h}", f"HTML5 {w}x{h}", "html5", ("text/html", "application/zip"), w, h,
                  asset_type="html", description=f"HTML5 banner bundle, {w}x{h}") for w, h, _ in _DISPLAY_SIZES[:3]),
    KnownFormat("video_hosted_16x9_30s", "Hosted video 16:9, up to 30 s", "video_hosted", ("video/mp4", "video/webm"),
                1920, 1080, 30, asset_type="video", description="Hosted MP4/WebM video file"),
    KnownFormat("video_hosted_9x16_15s", "Vertical hosted video 9:16, up to 15 s", "video_hosted", ("video/mp4",),
                1080, 1920, 15, asset_type="video", description="Vertical (stories) video"),
    KnownFormat("video_vast_30s", "VAST video, up to 30 s", "video_vast", ("application/xml", "text/xml"), None, None,
                30, asset_type="vast", description="VAST 4.x tag or document"),
    KnownFormat("audio_hosted_30s", "Hosted audio, up to 30 s", "audio_hosted", ("audio/mpeg", "audio/aac", "audio/ogg"),
                None, None, 30, asset_type="audio", description="Hosted audio spot"),
    KnownFormat("audio_daast_30s", "DAAST audio, up to 30 s", "audio_daast", ("application/xml",), None, None, 30,
                asset_type="daast", description="DAAST audio tag"),
    KnownFormat("native_in_feed", "Native in-feed", "native_in_feed", _IMAGE, 1200, 627, asset_id="image",
                description="Image, headline and body rendered in the publisher's feed style",
                extra_assets=({"item_type": "individual", "asset_id": "headline", "asset_type": "text", "required": True},
                              {"item_type": "individual", "asset_id": "body", "asset_type": "text", "required": False})),
)

BY_ID: dict[str, KnownFormat] = {f.format_id: f for f in FORMATS}


def list_formats(*, format_ids: list[str] | None = None, kinds: list[str] | None = None,
                 agent_url: str = STANDARD_AGENT_URL) -> list[dict[str, Any]]:
    """The catalogue as AdCP formats, optionally narrowed to some ids or canonical kinds."""
    chosen = [f for f in FORMATS
              if (not format_ids or f.format_id in format_ids) and (not kinds or f.kind in kinds)]
    return [f.as_adcp(agent_url) for f in chosen]


def supported_formats() -> list[dict[str, Any]]:
    """get_adcp_capabilities.creative.supported_formats: one build capability per catalogue format,
    its capability_id being the format id (what target_capability_id names)."""
    entries = []
    for known in FORMATS:
        params = {"width": known.width, "height": known.height} if known.width and known.height else {}
        entries.append({"capability_id": known.format_id, "operations": ["build"],
                        "format": {"format_kind": known.kind, "params": params, "display_name": known.name,
                                   "v1_format_ref": [{"agent_url": STANDARD_AGENT_URL, "id": known.format_id}]}})
    return entries
