"""The fast schema check (jsonschema-rs) agrees with adcp.validation, the authority, on which
sync_creatives requests are valid: on good requests, on hand-picked bad ones, and on
generated mutations of good ones, for every AdCP version we accept."""
from __future__ import annotations

import copy

import pytest
from adcp.validation import validate_request
from hypothesis import HealthCheck, given, settings, strategies as st

from creative_sync.samples import display_creative, sync_request, video_creative
from streams.library.requests import _surely_valid, schema_problems

pytestmark = pytest.mark.unit

VERSIONS = [None, "3.0", "3.1", "3.2"]


def base_creatives() -> list[dict]:
    legacy_video = {k: v for k, v in video_creative("v-legacy").items() if k != "format_kind"}
    legacy_video["format_id"] = {"agent_url": "https://creative.adcontextprotocol.org", "id": "video_standard_30s"}
    return [display_creative("d1", tags=["a", "b"]), video_creative("v1"), legacy_video,
            display_creative("d2", width=728, height=90, status="active")]


def authority(payload: dict, version: str | None) -> bool:
    return validate_request("sync_creatives", payload, version=version).valid


@pytest.mark.parametrize("version", VERSIONS)
def test_agrees_on_the_sample_requests(version):
    payload = sync_request("acct", base_creatives(), idempotency_key="k" * 20)
    assert _surely_valid(payload, version) == authority(payload, version)


BAD_EDITS = {
    "no name": lambda c: c.pop("name"),
    "no assets": lambda c: c.pop("assets"),
    "unknown format kind": lambda c: c.update(format_kind="hologram"),
    "format id without agent": lambda c: c.update(format_id={"id": "display_300x250"}),
    "width as text": lambda c: c["assets"][next(iter(c["assets"]))].update(width="wide"),
    "negative width": lambda c: c["assets"][next(iter(c["assets"]))].update(width=-3),
    "unknown asset type": lambda c: c["assets"][next(iter(c["assets"]))].update(asset_type="smell"),
    "url not a uri": lambda c: c["assets"][next(iter(c["assets"]))].update(url="not a url"),
    "tags not strings": lambda c: c.update(tags=[1, 2]),
    "creative id empty object": lambda c: c.update(creative_id={}),
    "unknown status": lambda c: c.update(status="glowing"),
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("edit", sorted(BAD_EDITS))
def test_agrees_on_hand_picked_bad_creatives(edit, version):
    creatives = base_creatives()
    BAD_EDITS[edit](creatives[0])
    payload = sync_request("acct", creatives, idempotency_key="k" * 20)
    assert _surely_valid(payload, version) == authority(payload, version)
    if not authority(payload, version):  # and the errors still come from the authority
        assert schema_problems(payload, version)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.text(max_size=12),
                    st.sampled_from(["https://x.example/a.png", "image/png", "video_hosted", "display", "image",
                                     "2026-11-01T00:00:00Z", "approved", "archived"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(["url", "width", "height", "asset_type", "id", "agent_url"]),
                                        inner, max_size=3), max_leaves=6)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, prefix + (index,))


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), version=st.sampled_from(VERSIONS))
def test_agrees_on_generated_mutations(data, version):
    payload = sync_request("acct", base_creatives(), idempotency_key="k" * 20)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from([p for p in paths(payload["creatives"]) if p]))
        parent = payload["creatives"]
        for step in path[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1])
        else:
            parent[path[-1]] = data.draw(VALUES)
    snapshot = copy.deepcopy(payload)
    assert _surely_valid(payload, version) == authority(payload, version), payload
    assert payload == snapshot
