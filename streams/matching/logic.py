"""Which sales agents can run which creative (pure: creatives and agent declarations in, verdicts out).

A creative matches an agent by exact format id (agent_url + id), by canonical format kind, or by
an asset MIME type (wildcards such as `video/*`), and then must fit the dimensions and duration
the agent declares, if it declares any. An incompatible pair is `skipped` with a reason a person
can act on ("Video format not supported by display agent") and is never sent. Triggers (content
change, manual sync, campaigns, tactics) all come through `match`.
"""
from __future__ import annotations

import functools
import mimetypes
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from streams.library.formats import BY_ID, STANDARD_AGENT_URL

#: canonical format kind -> the family a person calls it by
FAMILY_OF_KIND = {
    "image": "display", "html5": "display", "display_tag": "display", "image_carousel": "display",
    "responsive_creative": "display", "seller_rendered_stateful_display": "display",
    "video_hosted": "video", "video_vast": "video",
    "audio_hosted": "audio", "audio_vast": "audio", "audio_daast": "audio",
    "native_in_feed": "native", "sponsored_placement": "native",
}
_FAMILY_OF_MIME = {"image": "display", "text": "display", "video": "video", "audio": "audio"}
_MIME_OF_ASSET_TYPE = {"image": "image/*", "video": "video/*", "audio": "audio/*", "html": "text/html",
                       "vast": "application/xml", "daast": "application/xml", "text": "text/plain"}


@dataclass(frozen=True)
class CreativeTraits:
    """What matching needs to know of a creative."""

    format_id: tuple[str, str] | None = None  # (agent_url, id)
    format_kind: str | None = None
    mime_types: frozenset[str] = frozenset()
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None

    @property
    def family(self) -> str:
        if self.format_kind in FAMILY_OF_KIND:
            return FAMILY_OF_KIND[self.format_kind]
        for mime in sorted(self.mime_types):
            if mime.split("/")[0] in _FAMILY_OF_MIME:
                return _FAMILY_OF_MIME[mime.split("/")[0]]
        return "unknown"


@dataclass(frozen=True)
class AgentFormats:
    """What a sales agent says it accepts (declared at registration or discovered from it)."""

    name: str
    format_ids: frozenset[tuple[str, str]] = frozenset()
    format_kinds: frozenset[str] = frozenset()
    mime_types: frozenset[str] = frozenset()  # may hold wildcards: video/*
    sizes: frozenset[tuple[int, int]] = frozenset()  # accepted width x height; empty: any
    max_duration_s: float | None = None

    @property
    def family(self) -> str:
        families = {FAMILY_OF_KIND.get(k, "other") for k in self.format_kinds}
        families |= {_FAMILY_OF_MIME.get(m.split("/")[0], "other") for m in self.mime_types}
        families |= {FAMILY_OF_KIND.get(BY_ID[i].kind, "other") for _, i in self.format_ids if i in BY_ID}
        families.discard("other")
        return "/".join(sorted(families)) if families else "this"


@dataclass(frozen=True)
class Match:
    compatible: bool
    by: str | None = None  # format_id | format_kind | mime_type
    reason: str | None = None  # why not, for people

    @classmethod
    def skip(cls, reason: str) -> "Match":
        return cls(False, None, reason)


def mime_matches(pattern: str, mime: str) -> bool:
    """`video/*` matches `video/mp4`; `*/*` matches anything; a creative-side `video/*` (type only
    known) matches an agent's `video/mp4` too."""
    p_type, _, p_sub = pattern.lower().partition("/")
    m_type, _, m_sub = mime.lower().partition("/")
    return (p_type in ("*", m_type)) and (p_sub in ("*", m_sub) or m_sub == "*")


def traits_of(creative: Mapping[str, Any]) -> CreativeTraits:
    """The traits of an AdCP creative (3.2 `format_kind` or legacy `format_id`, and its assets)."""
    format_id = creative.get("format_id")
    ref = None
    if isinstance(format_id, Mapping):
        ref = (normalise_agent_url(format_id.get("agent_url", "")), str(format_id.get("id", "")))
    elif isinstance(format_id, str):
        ref = (normalise_agent_url(STANDARD_AGENT_URL), format_id)
    known = BY_ID.get(ref[1]) if ref else None
    kind = creative.get("format_kind") or (known.kind if known else None) \
        or (kind_of_format({"format_id": {"id": ref[1]}}) if ref else None)
    mimes: set[str] = set()
    width = height = duration = None
    for asset in _assets(creative.get("assets")):
        mime = asset.get("mime_type") or mimetypes.guess_type(str(asset.get("url", "")))[0] \
            or _MIME_OF_ASSET_TYPE.get(str(asset.get("asset_type")))
        if mime:
            mimes.add(str(mime))
        width = width or _int(asset.get("width"))
        height = height or _int(asset.get("height"))
        if asset.get("duration_ms") is not None:
            duration = float(asset["duration_ms"]) / 1000
    if known and width is None:
        width, height = known.width, known.height
    return CreativeTraits(ref, kind, frozenset(mimes), width, height, duration)


def match(creative: CreativeTraits, agent: AgentFormats) -> Match:
    """Whether `agent` can run `creative`, and how (or why not)."""
    if creative.format_id and creative.format_id in agent.format_ids:
        return Match(True, "format_id")  # the agent's own format: it defined what fits
    by = None
    if creative.format_kind and creative.format_kind in agent.format_kinds:
        by = "format_kind"
    elif any(mime_matches(pattern, mime) for pattern in agent.mime_types for mime in creative.mime_types):
        by = "mime_type"
    if by is None:
        family = creative.family
        label = family.capitalize() if family != "unknown" else "This creative's"
        return Match.skip(f"{label} format not supported by {agent.family} agent {agent.name}".replace("  ", " "))
    if agent.sizes and (creative.width, creative.height) not in agent.sizes:
        size = f"{creative.width}x{creative.height}" if creative.width else "unknown size"
        accepted = ", ".join(f"{w}x{h}" for w, h in sorted(agent.sizes))
        return Match.skip(f"Size {size} not accepted by {agent.name} (accepts {accepted})")
    if agent.max_duration_s is not None and creative.duration_s is not None and creative.duration_s > agent.max_duration_s:
        return Match.skip(f"Duration {creative.duration_s:g} s exceeds the {agent.max_duration_s:g} s {agent.name} accepts")
    return Match(True, by)


def _assets(assets: Any) -> Iterable[Mapping[str, Any]]:
    if not isinstance(assets, Mapping):
        return []
    found: list[Mapping[str, Any]] = []
    for slot in assets.values():
        for asset in slot if isinstance(slot, list) else [slot]:
            if isinstance(asset, Mapping):
                found.append(asset)
    return found


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def formats_of(name: str, declared: Iterable[str], discovered: Iterable[Mapping[str, Any]]) -> AgentFormats:
    """What an agent accepts: its declared formats when given at registration (format ids such as
    `display_300x250`, kinds such as `video_hosted`, MIME patterns such as `video/*`), else the
    formats discovery found (AdCP Format objects)."""
    ids: set[tuple[str, str]] = set()
    kinds: set[str] = set()
    mimes: set[str] = set()
    declared = [str(d) for d in declared]
    for item in declared:
        if "/" in item:
            mimes.add(item.lower())
        elif item in BY_ID:
            ids.add((normalise_agent_url(STANDARD_AGENT_URL), item))
            kinds.add(BY_ID[item].kind)
        else:
            kinds.add(item)
    if not declared:
        for listed in listed_formats(discovered):
            ids.add(listed.key)
            if listed.kind:
                kinds.add(listed.kind)
    return AgentFormats(name, format_ids=frozenset(ids), format_kinds=frozenset(kinds), mime_types=frozenset(mimes))


# -- what an agent lists --------------------------------------------------------------------------
def normalise_agent_url(url: Any) -> str:
    """A format's agent_url as compared: scheme and host in lower case, no default port, no
    trailing slash (agents list `https://creative.adcontextprotocol.org/` for what buyers send as
    `https://creative.adcontextprotocol.org`). What does not parse is compared as given."""
    return _normalised(str(url or "").strip())


@functools.lru_cache(maxsize=4096)  # a handful of agent URLs, asked about for every creative
def _normalised(text: str) -> str:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text.rstrip("/")
    if not parts.scheme or not parts.hostname:
        return text.rstrip("/")
    scheme = parts.scheme.lower()
    netloc = parts.hostname.lower() + (f":{port}" if port and port != {"http": 80, "https": 443}.get(scheme) else "")
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}" + (f"?{parts.query}" if parts.query else "")


@dataclass(frozen=True)
class ListedFormat:
    """One format an agent lists, as it lists it, and what we make of it."""

    format_id: tuple[tuple[str, Any], ...]  # the agent's own format_id object, to send back as is
    key: tuple[str, str]  # (normalised agent_url, id): how it is compared
    kind: str | None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None

    def as_format_id(self) -> dict[str, Any]:
        return dict(self.format_id)


#: The type of a format (AdCP 3.0/3.1 `type`) or of its main asset -> the canonical kind.
_KIND_OF_TYPE = {"display": "image", "image": "image", "html": "html5", "html5": "html5", "video": "video_hosted",
                 "vast": "video_vast", "audio": "audio_hosted", "daast": "audio_daast", "native": "native_in_feed"}
_SIZE = re.compile(r"(\d{2,4})x(\d{2,4})")
_SECONDS = re.compile(r"(?:^|_)(\d{1,3})s(?:$|_)")


def kind_of_format(fmt: Mapping[str, Any]) -> str | None:
    """A listed format's canonical kind: from what its definition says (canonical kind, type, its
    assets), else from the well-known ids of the reference creative agent (`display_300x250`,
    `display_300x250_html`, `video_30s`, `video_vast_30s`, `audio_30s`, `native_...`)."""
    canonical = fmt.get("canonical")
    if isinstance(canonical, Mapping) and canonical.get("kind"):
        return str(canonical["kind"])
    format_id = fmt.get("format_id")
    identifier = str(format_id.get("id", "")) if isinstance(format_id, Mapping) else str(format_id or "")
    if identifier in BY_ID:
        return BY_ID[identifier].kind
    asset_types = [str(a.get("asset_type", "")).lower() for a in fmt.get("assets") or [] if isinstance(a, Mapping)]
    for asset_type in ("vast", "daast", "html", "video", "audio"):
        if asset_type in asset_types:
            return _KIND_OF_TYPE[asset_type]
    declared_type = str(fmt.get("type") or "").lower()
    if declared_type in _KIND_OF_TYPE and declared_type != "display":
        return _KIND_OF_TYPE[declared_type]
    words = identifier.lower().split("_")
    if "vast" in words:
        return "video_vast" if "audio" not in words else "audio_vast"
    if "daast" in words:
        return "audio_daast"
    if words and words[0] in ("video", "audio", "native", "html5"):
        return _KIND_OF_TYPE[words[0]]
    if words and words[0] == "display":
        return "html5" if {"html", "html5"} & set(words) else "image"
    if declared_type == "display" or "image" in asset_types:
        return "image"
    return None


def listed_formats(discovered: Iterable[Any]) -> list[ListedFormat]:
    """The formats an agent listed (AdCP Format objects), each with its kind, size and duration
    as far as its definition or its id tell."""
    found = []
    for fmt in discovered:
        if not isinstance(fmt, Mapping) or not isinstance(fmt.get("format_id"), Mapping):
            continue
        format_id = fmt["format_id"]
        identifier = str(format_id.get("id", ""))
        width = height = duration = None
        for render in fmt.get("renders") or []:
            dimensions = render.get("dimensions") if isinstance(render, Mapping) else None
            if isinstance(dimensions, Mapping):
                width, height = _int(dimensions.get("width")), _int(dimensions.get("height"))
                break
        size = _SIZE.search(identifier)
        if width is None and size:
            width, height = int(size.group(1)), int(size.group(2))
        seconds = _SECONDS.search(identifier)
        if seconds:
            duration = float(seconds.group(1))
        found.append(ListedFormat(tuple(sorted((str(k), v) for k, v in format_id.items() if isinstance(v, (str, int)))),
                                  (normalise_agent_url(format_id.get("agent_url", "")), identifier),
                                  kind_of_format(fmt), width, height, duration))
    return found


def placement(creative: CreativeTraits, listed: Sequence[ListedFormat]) -> ListedFormat | None:
    """The one of an agent's listed formats a creative goes out as: its own format id, as the
    agent lists it; else a listed format of its kind that fits its size and duration."""
    if creative.format_id is not None:
        exact = next((f for f in listed if f.key == creative.format_id), None)
        if exact is not None:
            return exact
    if creative.format_kind is None:
        return None
    for fmt in listed:
        if fmt.kind != creative.format_kind:
            continue
        if fmt.width is not None and creative.width is not None and (fmt.width, fmt.height) != (creative.width, creative.height):
            continue
        if fmt.duration_s is not None and creative.duration_s is not None and creative.duration_s > fmt.duration_s:
            continue
        return fmt
    return None


# -- which agents, when none are named -------------------------------------------------------------
@dataclass(frozen=True)
class TacticActivity:
    """What auto-detection knows of one tactic."""

    brand_agent_id: str
    campaign_id: str
    sales_agent_id: str
    active: bool  # the tactic is active in an active campaign
    created_at: datetime | None = None
    updated_at: datetime | None = None  # its last change (e.g. paused): it was active until then
    last_synced_at: datetime | None = None  # the last delivery of one of its campaign's creatives to its agent


ACTIVITY_WINDOW = timedelta(days=30)


def detected_agents(tactics: Iterable[TacticActivity], brand_agent_ids: set[str], now: datetime, *,
                    campaign_id: str | None = None, window: timedelta = ACTIVITY_WINDOW) -> list[str]:
    """The sales agents a creative goes to when none are named: those of the brand agent's active
    campaigns' active tactics, plus those of its tactics created, active or synced in the last
    `window` (30 days). A `campaign_id` limits the answer to that campaign's active tactics.
    Agents active only for another brand agent, or longer ago, are not detected."""
    since = now - window
    found: dict[str, None] = {}
    for tactic in tactics:
        if tactic.brand_agent_id not in brand_agent_ids:
            continue
        if campaign_id is not None:
            if tactic.campaign_id == campaign_id and tactic.active:
                found[tactic.sales_agent_id] = None
            continue
        recent = any(t is not None and t >= since for t in (tactic.created_at, tactic.updated_at, tactic.last_synced_at))
        if tactic.active or recent:
            found[tactic.sales_agent_id] = None
    return sorted(found)

