"""AdCP versions, as pure functions: which release serves a request, what an unversioned (3.0-era)
request leaves out and how it is derived, and how an answer is shaped for the release it goes to.

- `adcp_version` "3.0" / "3.1" / "3.2" is served in that release's shapes; a later 3.x is served
  3.2 (minor releases are backward compatible); another major is VERSION_UNSUPPORTED.
  The legacy `adcp_major_version: 3` pins the major only: 3.0.
- A request with neither is, per the spec, a 3.0 request. Clients from before 3.0 was final also
  leave out what 3.0 made required; for them (documented in the README):
  `account` → the principal's only account (several: ACCOUNT_REQUIRED);
  `idempotency_key` → derived from the request's content (`derived-<sha256>`), so a resend of the
  same request is recognised and applied at most once;
  an asset's `asset_type` → the type the creative's format declares for that asset slot, else the
  one its URL's file type or its content implies.
  An unversioned request in 3.2 shapes (e.g. a creative with `format_kind`) is served as 3.2.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from streams.library.formats import BY_ID, FORMATS, STANDARD_AGENT_URL

SUPPORTED_VERSIONS = ("3.0", "3.1", "3.2")
LATEST = SUPPORTED_VERSIONS[-1]
UNVERSIONED = "3.0"  # the spec: a request without a version is a 3.0 request


class VersionRefused(ValueError):
    def __init__(self, code: str, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field, self.suggestion = code, message, "adcp_version", suggestion


def requested_version(params: Mapping[str, Any]) -> str | None:
    """The release that serves `params`, or None when the request names none."""
    version = params.get("adcp_version")
    if version is None:
        major = params.get("adcp_major_version")
        if major is None:
            return None
        if major == 3:
            return "3.0"
        raise VersionRefused("VERSION_UNSUPPORTED", f"adcp_major_version {major!r} is not supported; this agent speaks 3.",
                             f"Send adcp_version {LATEST}.")
    parts = str(version).split("-")[0].split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise VersionRefused("INVALID_REQUEST", f"adcp_version {version!r} is not a version (e.g. {LATEST}).")
    release = ".".join(parts[:2])
    if release in SUPPORTED_VERSIONS:
        return release
    major, minor = int(parts[0]), int(parts[1])
    latest_major, latest_minor = map(int, LATEST.split("."))
    if major == latest_major and minor > latest_minor:
        return LATEST
    raise VersionRefused("VERSION_UNSUPPORTED", f"adcp_version {version!r} is not supported; use one of "
                         f"{', '.join(SUPPORTED_VERSIONS)}.", f"Send adcp_version {LATEST}.")


# -- unversioned requests: what 3.0-era clients leave out --------------------------------------------
_BY_EXTENSION = {"png": "image", "jpg": "image", "jpeg": "image", "gif": "image", "webp": "image", "svg": "image",
                 "mp4": "video", "webm": "video", "mov": "video", "mp3": "audio", "aac": "audio", "ogg": "audio",
                 "wav": "audio", "html": "html", "htm": "html", "zip": "html", "js": "javascript", "xml": "vast",
                 "css": "css"}


def derived_asset_type(format_id: Any, asset_id: str, asset: Mapping[str, Any]) -> str | None:
    known = BY_ID.get(format_id.get("id")) if isinstance(format_id, Mapping) else None
    if known is not None:
        if asset_id == known.asset_id:
            return known.asset_type
        for extra in known.extra_assets:
            if extra.get("asset_id") == asset_id:
                return extra.get("asset_type")
    url = asset.get("url")
    if isinstance(url, str):
        extension = url.split("?")[0].rsplit(".", 1)[-1].lower() if "." in url.rsplit("/", 1)[-1] else ""
        return _BY_EXTENSION.get(extension, "url")
    content = asset.get("content")
    if isinstance(content, str):
        stripped = content.lstrip().lower()
        return "vast" if stripped.startswith(("<vast", "<?xml")) else "html" if stripped.startswith("<") else "text"
    return None


def with_derived_fields(task: str, params: Mapping[str, Any], only_account: str | None) -> dict[str, Any]:
    """An unversioned request with what older clients leave out derived (see the module doc)."""
    derived = dict(params)
    if task != "sync_creatives":
        return derived
    if "account" not in derived and only_account is not None:
        derived["account"] = {"account_id": only_account}
    creatives = derived.get("creatives")
    if isinstance(creatives, list):
        derived["creatives"] = [_with_asset_types(c) for c in creatives]
    if "idempotency_key" not in derived:
        digest = hashlib.sha256(json.dumps(derived, sort_keys=True, separators=(",", ":"), default=str).encode())
        derived["idempotency_key"] = f"derived-{digest.hexdigest()[:40]}"
    return derived


def _with_asset_types(creative: Any) -> Any:
    if not isinstance(creative, Mapping) or not isinstance(creative.get("assets"), Mapping):
        return creative
    assets = {}
    for asset_id, asset in creative["assets"].items():
        if isinstance(asset, Mapping) and "asset_type" not in asset:
            kind = derived_asset_type(creative.get("format_id"), asset_id, asset)
            asset = {**asset, "asset_type": kind} if kind else asset
        assets[asset_id] = asset
    return {**creative, "assets": assets}


# -- answers shaped for the release they go to ------------------------------------------------------
def format_id_for(item: Mapping[str, Any]) -> dict[str, str]:
    """A 3.0 format_id for a creative known by its canonical kind: the first catalogue format of that
    kind whose size matches its main asset, else the first of that kind."""
    kind = item.get("format_kind")
    sizes = [(a.get("width"), a.get("height")) for a in (item.get("assets") or {}).values() if isinstance(a, Mapping)]
    same_kind = [f for f in FORMATS if f.kind == kind]
    fitting = [f for f in same_kind if (f.width, f.height) in sizes] or same_kind
    return {"agent_url": STANDARD_AGENT_URL, "id": fitting[0].format_id if fitting else str(kind)}


def _named_format(item: dict[str, Any]) -> dict[str, Any]:
    """3.0 knows creatives by format_id only (required there; format_kind came with 3.1)."""
    if "format_id" not in item and "format_kind" in item:
        item = {**item, "format_id": format_id_for(item)}
    return {k: v for k, v in item.items() if k not in ("format_kind", "format_option_ref")}


def _list_creatives_30(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "creatives": [_named_format(c) for c in body.get("creatives", [])]}


def _capabilities_30(body: dict[str, Any]) -> dict[str, Any]:
    creative = {k: v for k, v in (body.get("creative") or {}).items() if k != "supported_formats"}
    return {**body, "creative": creative} if "creative" in body else body


_SHAPERS: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("list_creatives", "3.0"): _list_creatives_30,
    ("get_adcp_capabilities", "3.0"): _capabilities_30,
}


def shaped(task: str, version: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` (in the latest shapes) as release `version` defines the answer of `task`."""
    shaper = _SHAPERS.get((task, version))
    return shaper(body) if shaper is not None else body
