"""Valid AdCP creatives and sync_creatives requests, for the demo, the benchmark and the tests."""
from __future__ import annotations

import uuid
from typing import Any

from streams.library.formats import STANDARD_AGENT_URL


def display_creative(creative_id: str, *, name: str | None = None, url: str | None = None, width: int = 300,
                     height: int = 250, tags: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A static display banner on our standard format display_<w>x<h> (3.2 `format_id` form)."""
    creative = {
        "creative_id": creative_id,
        "name": name or f"Banner {creative_id}",
        "format_id": {"agent_url": STANDARD_AGENT_URL, "id": f"display_{width}x{height}"},
        "assets": {"main": {"asset_type": "image", "url": url or f"https://cdn.example.com/{creative_id}.png",
                            "width": width, "height": height}},
    }
    if tags is not None:
        creative["tags"] = tags
    return {**creative, **extra}


def video_creative(creative_id: str, *, name: str | None = None, duration_ms: int = 15000, **extra: Any) -> dict[str, Any]:
    """A hosted video creative, in the 3.2 `format_kind` form."""
    return {
        "creative_id": creative_id,
        "name": name or f"Video {creative_id}",
        "format_kind": "video_hosted",
        "assets": {"video": {"asset_type": "video", "url": f"https://cdn.example.com/{creative_id}.mp4",
                             "width": 1920, "height": 1080, "duration_ms": duration_ms}},
        **extra,
    }


def sync_request(account_id: str, creatives: list[dict[str, Any]], *, idempotency_key: str | None = None,
                 **extra: Any) -> dict[str, Any]:
    return {"account": {"account_id": account_id}, "idempotency_key": idempotency_key or f"key-{uuid.uuid4()}",
            "creatives": creatives, **extra}
