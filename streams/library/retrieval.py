"""Library retrieval (AdCP build_creative with `creative_id`): a library creative as a servable
manifest in a target format of our catalogue, as pure functions.

What can be rendered where:
- the creative's own format, or another of the same canonical kind whose size (and duration) it
  fits: its assets as they are;
- a hosted image into an HTML5 slot of the same size: an ad-serving tag (an `<a><img></a>` snippet);
- a hosted video into a VAST slot whose duration it fits: an inline VAST 4.2 document.
Anything else is refused with the formats the creative *can* be rendered in.

Macros: `macro_values` are AdCP universal macros (`CLICK_URL`, `CACHEBUSTER`, ...). They are bound
in the creative's URLs with the adcp SDK's translator (values percent-encoded, consent macros
reported); a macro without a value is kept as it is, for the sales agent to fill (the 3.x legacy path).
"""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from adcp.substitution import (NativeMacroMapping, UniversalMacroTranslationError, ValueMacroMapping,
                               translate_universal_macros)

from streams.library.formats import BY_ID, FORMATS, STANDARD_AGENT_URL, KnownFormat

_MACRO = re.compile(r"\{[A-Z][A-Z0-9_]*\}")
_MACRO_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
VAST_VERSION = "4.2"


class NotRenderable(ValueError):
    """The creative cannot be rendered in the target format (code, field and suggestion for the buyer)."""

    def __init__(self, code: str, message: str, *, field: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field, self.suggestion = code, message, field, suggestion


@dataclass
class Built:
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def target_format(format_id: Any, *, field_name: str, own_agent_urls: tuple[str, ...]) -> KnownFormat:
    """The catalogue format a `target_format_id` names (ours or the standard agent's), or a refusal."""
    ref_id = format_id.get("id") if isinstance(format_id, dict) else format_id
    agent_url = format_id.get("agent_url") if isinstance(format_id, dict) else None
    known = BY_ID.get(str(ref_id))
    if known is None or (agent_url and agent_url.rstrip("/") not in {*own_agent_urls, STANDARD_AGENT_URL}):
        raise NotRenderable("FORMAT_NOT_SUPPORTED", f"{field_name} {ref_id!r} is not a format of this creative agent.",
                            field=field_name, suggestion="list_creative_formats lists the formats it renders.")
    return known


def _source_format(creative: dict[str, Any]) -> tuple[str | None, KnownFormat | None]:
    format_id = creative.get("format_id")
    known = BY_ID.get(format_id.get("id")) if isinstance(format_id, dict) else None
    return (known.kind if known else creative.get("format_kind")), known


def _primary(creative: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The creative's main media asset (image, video, audio, html...): the first asset that has a URL or content."""
    for asset_id, asset in (creative.get("assets") or {}).items():
        if isinstance(asset, dict) and asset.get("asset_type") not in ("url", "text") and (
                asset.get("url") or asset.get("content")):
            return asset_id, asset
    return None


def _click_url(creative: dict[str, Any]) -> str | None:
    for asset in (creative.get("assets") or {}).values():
        if isinstance(asset, dict) and asset.get("asset_type") == "url" and asset.get("url_type", "clickthrough") == "clickthrough":
            return asset.get("url")
    return None


def _fits(asset: dict[str, Any], target: KnownFormat) -> str | None:
    """Why the asset does not fit the target's size or duration (None when it does)."""
    if target.width and target.height and asset.get("width") and asset.get("height"):
        if (asset["width"], asset["height"]) != (target.width, target.height):
            return f"it is {asset['width']}x{asset['height']}, the format is {target.width}x{target.height}"
    duration_ms = asset.get("duration_ms")
    if target.max_duration_s and isinstance(duration_ms, int | float) and duration_ms > target.max_duration_s * 1000:
        return f"it lasts {duration_ms / 1000:g} s, the format at most {target.max_duration_s:g} s"
    return None


def _image_tag(asset: dict[str, Any], click: str | None, name: str) -> str:
    image = (f'<img src="{html.escape(asset["url"])}" width="{asset.get("width", "")}" height="{asset.get("height", "")}" '
             f'alt="{html.escape(name)}" style="border:0;display:block">')
    return f'<a href="{html.escape(click)}" target="_blank" rel="noopener">{image}</a>' if click else image


def _vast(creative_id: str, name: str, asset: dict[str, Any], click: str | None) -> str:
    seconds = int(asset.get("duration_ms", 0) // 1000)
    duration = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    mime = asset.get("mime_type") or ("video/webm" if str(asset.get("url", "")).endswith(".webm") else "video/mp4")
    clicks = f"<VideoClicks><ClickThrough><![CDATA[{click}]]></ClickThrough></VideoClicks>" if click else ""
    return (f'<VAST version="{VAST_VERSION}"><Ad id="{xml_escape(creative_id)}"><InLine>'
            f"<AdSystem>creative-sync</AdSystem><AdTitle>{xml_escape(name)}</AdTitle><Impression/>"
            f'<Creatives><Creative id="{xml_escape(creative_id)}"><Linear><Duration>{duration}</Duration>'
            f'<MediaFiles><MediaFile delivery="progressive" type="{mime}" width="{asset.get("width", 0)}" '
            f'height="{asset.get("height", 0)}"><![CDATA[{asset["url"]}]]></MediaFile></MediaFiles>{clicks}'
            f"</Linear></Creative></Creatives></InLine></Ad></VAST>")


def _assets_for(creative: dict[str, Any], target: KnownFormat) -> dict[str, Any]:
    kind, _ = _source_format(creative)
    primary = _primary(creative)
    if primary is None:
        raise NotRenderable("FORMAT_NOT_SUPPORTED", "The creative has no media asset to render.", field="creative_id")
    asset_id, asset = primary
    name = str(creative.get("name") or creative.get("creative_id"))
    if kind == target.kind:
        if (why := _fits(asset, target)) is not None:
            raise NotRenderable("CREATIVE_SIZE_MISMATCH", f"The creative cannot fill {target.format_id}: {why}.",
                                field="target_format_id")
        assets = dict(creative.get("assets") or {})
        if asset_id != target.asset_id:  # the target's slot name for the main asset
            assets[target.asset_id] = assets.pop(asset_id)
        return assets
    if kind == "image" and target.kind == "html5":
        if (why := _fits(asset, target)) is not None:
            raise NotRenderable("CREATIVE_SIZE_MISMATCH", f"The creative cannot fill {target.format_id}: {why}.",
                                field="target_format_id")
        return {target.asset_id: {"asset_type": "html", "content": _image_tag(asset, _click_url(creative), name)}}
    if kind == "video_hosted" and target.kind == "video_vast":
        if (why := _fits(asset, target)) is not None:
            raise NotRenderable("CREATIVE_SIZE_MISMATCH", f"The creative cannot fill {target.format_id}: {why}.",
                                field="target_format_id")
        return {target.asset_id: {"asset_type": "vast", "delivery_type": "inline", "vast_version": VAST_VERSION,
                                  "content": _vast(str(creative.get("creative_id")), name, asset, _click_url(creative))}}
    raise NotRenderable("FORMAT_NOT_SUPPORTED", f"A {kind or 'creative of unknown kind'} cannot be rendered as "
                        f"{target.format_id} ({target.kind}).", field="target_format_id")


def renderable_formats(creative: dict[str, Any]) -> list[str]:
    """The catalogue formats this creative can be rendered in (the suggestion of a refusal)."""
    fitting = []
    for candidate in FORMATS:
        try:
            _assets_for(creative, candidate)
        except NotRenderable:
            continue
        fitting.append(candidate.format_id)
    return fitting


def bind_macros(assets: dict[str, Any], macro_values: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """`macro_values` bound in every asset URL (and URLs inside a generated tag); warnings for the
    consent macros a buyer froze at build time."""
    for name in macro_values:
        if not _MACRO_NAME.match(name):
            raise NotRenderable("INVALID_REQUEST", f"macro_values key {name!r} is not a universal macro name "
                                "(CLICK_URL, CACHEBUSTER...).", field=f"macro_values.{name}")
    given = {f"{{{k}}}": ValueMacroMapping(value=v) for k, v in macro_values.items()}
    warnings: list[str] = []

    def translate(url: str) -> str:
        # A macro without a value is kept for the sales agent (native mapping to itself).
        mapping = {**{m: NativeMacroMapping(native=m) for m in _MACRO.findall(url)}, **given}
        try:
            result = translate_universal_macros(url, mapping)
        except UniversalMacroTranslationError as error:
            raise NotRenderable("MACRO_RESOLUTION_FAILED", f"macro value {error} is not allowed in a URL.",
                                field="macro_values") from None
        warnings.extend(f"{m} was bound at build time; consent should be resolved at impression time."
                        for m in result.frozen_consent_macros)
        return result.url

    bound = {}
    for slot, asset in assets.items():
        if isinstance(asset, dict) and isinstance(asset.get("url"), str) and "{" in asset["url"]:
            asset = {**asset, "url": translate(asset["url"])}
        bound[slot] = asset
    return bound, sorted(set(warnings))


def build_manifest(creative: dict[str, Any], target: KnownFormat, macro_values: dict[str, str], *,
                   named_format: bool, agent_url: str) -> Built:
    """The manifest of `creative` in `target`. `named_format`: the request used the (deprecated)
    target_format_id, so the manifest names the format by format_id; otherwise by format_kind."""
    bound, warnings = bind_macros(creative.get("assets") or {}, macro_values)
    assets = _assets_for({**creative, "assets": bound}, target)
    manifest: dict[str, Any] = {"assets": assets}
    if named_format:
        manifest["format_id"] = {"agent_url": agent_url, "id": target.format_id}
    else:
        manifest["format_kind"] = target.kind
    for key in ("provenance", "industry_identifiers", "brand"):
        if key in creative:
            manifest[key] = creative[key]
    return Built(manifest, warnings)


def content_digest(manifest: dict[str, Any]) -> str:
    """A stable identity of what was built (recipe_hash: same creative version, target and macros)."""
    import hashlib

    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]
