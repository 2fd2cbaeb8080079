"""list_creatives as a pure function over one account's creatives: filters, sort, pages, projection."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from adcp.validation import validate_response

from creative_sync.samples import display_creative, video_creative
from streams.library.queries import QueryError, list_creatives
from topics.events import ChangeKind, CreativeChanged

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def creative(creative_id: str, *, minutes: int = 0, status: str = "approved", tags=(), video=False, packages=()):
    body = video_creative(creative_id) if video else display_creative(creative_id, tags=list(tags))
    return CreativeChanged(event_id=creative_id, account_id="a", creative_id=creative_id, change=ChangeKind.CREATED,
                           content_version=1, content_hash="h", name=body["name"], status=status, tags=list(tags),
                           format_kind="video_hosted" if video else None,
                           format_id=None if video else "https://creative.adcontextprotocol.org#display_300x250",
                           assigned_to=list(packages), creative_json=json.dumps(body), command_id="cmd",
                           created_at=T0 + timedelta(minutes=minutes), updated_at=T0 + timedelta(minutes=minutes))


LIBRARY = [creative("c1", minutes=1, tags=["q4", "holiday"]), creative("c2", minutes=2, tags=["q4"]),
           creative("v1", minutes=3, video=True, packages=["pkg"]), creative("old", minutes=0, status="archived")]


def ids(response):
    return [c["creative_id"] for c in response["creatives"]]


@pytest.mark.parametrize("filters, expected", [
    ({}, ["v1", "c2", "c1"]),  # archived excluded, newest first
    ({"statuses": ["archived"]}, ["old"]),
    ({"tags": ["q4", "holiday"]}, ["c1"]),
    ({"tags_any": ["holiday", "nope"]}, ["c1"]),
    ({"name_contains": "VIDEO"}, ["v1"]),
    ({"creative_ids": ["c1", "old"]}, ["c1"]),
    ({"created_after": (T0 + timedelta(minutes=1)).isoformat()}, ["v1", "c2"]),
    ({"updated_before": (T0 + timedelta(minutes=2)).isoformat()}, ["c1"]),
    ({"format_kinds": ["video_hosted"]}, ["v1"]),
    ({"format_ids": [{"agent_url": "https://creative.adcontextprotocol.org", "id": "display_300x250"}]}, ["c2", "c1"]),
    ({"assigned_to_packages": ["pkg"]}, ["v1"]),
])
def test_filters(filters, expected):
    assert ids(list_creatives(LIBRARY, {"filters": filters})) == expected


def test_sort_pages_and_summaries_follow_the_adcp_shape():
    first = list_creatives(LIBRARY, {"sort": {"field": "name", "direction": "asc"}, "pagination": {"max_results": 2}})
    assert ids(first) == ["c1", "c2"] and first["pagination"]["has_more"] is True
    second = list_creatives(LIBRARY, {"sort": {"field": "name", "direction": "asc"},
                                      "pagination": {"max_results": 2, "cursor": first["pagination"]["cursor"]}})
    assert ids(second) == ["v1"] and second["pagination"]["has_more"] is False
    assert first["query_summary"]["total_matching"] == 3 and first["status_summary"] == {"approved": 3}
    assert validate_response("list_creatives", first).valid


def test_fields_projection_and_assignments():
    response = list_creatives(LIBRARY, {"fields": ["name"], "include_assignments": True,
                                        "filters": {"creative_ids": ["v1"]}})
    [projected] = response["creatives"]
    # What the schema requires of a creative is kept whatever `fields` says; the rest is left out.
    assert set(projected) == {"creative_id", "name", "status", "created_date", "updated_date", "format_kind"}
    assert projected["name"] == "Video v1" and validate_response("list_creatives", response).valid
    assert set(list_creatives(LIBRARY, {"fields": ["assets"], "filters": {"creative_ids": ["v1"]}})["creatives"][0]) == \
        {"creative_id", "name", "status", "created_date", "updated_date", "format_kind", "assets"}
    full = list_creatives(LIBRARY, {"include_assignments": True, "filters": {"creative_ids": ["v1"]}})
    assert full["creatives"][0]["assignments"]["assigned_packages"] == [
        {"package_id": "pkg", "assigned_date": (T0 + timedelta(minutes=3)).isoformat()}]
    assert validate_response("list_creatives", full).valid


@pytest.mark.parametrize("request_, field", [
    ({"pagination": {"max_results": 101}}, "pagination.max_results"),
    ({"pagination": {"cursor": "garbage"}}, "pagination.cursor"),
    ({"sort": {"field": "colour"}}, "sort.field"),
    ({"filters": {"created_after": "yesterday"}}, "filters.created_after"),
])
def test_bad_queries_name_their_field(request_, field):
    with pytest.raises(QueryError) as error:
        list_creatives(LIBRARY, request_)
    assert error.value.field == field


def test_asset_types_filter_and_unsupported_filters_are_refused_not_ignored():
    images = list_creatives(LIBRARY, {"filters": {"asset_types": ["image"]}})
    assert images["creatives"] and all(any(a.get("asset_type") == "image" for a in c["assets"].values())
                                       for c in images["creatives"])
    assert images["query_summary"]["filters_applied"] == ["asset_types"]
    assert list_creatives(LIBRARY, {"filters": {"asset_types": ["audio"]}})["creatives"] == []
    with pytest.raises(QueryError) as refused:
        list_creatives(LIBRARY, {"filters": {"media_buy_ids": ["mb-1"]}})
    assert refused.value.field == "filters.media_buy_ids"


def _with(base: CreativeChanged, **fields) -> CreativeChanged:
    body = {**json.loads(base.creative_json), **fields}
    return base.model_copy(update={"creative_json": json.dumps(body)})


def test_concept_ids_and_has_variables_filters_and_variables_only_when_asked():
    slot = {"variable_id": "headline", "name": "Headline", "variable_type": "text", "default_value": "Sale"}
    library = [_with(creative("c1", minutes=1), concept_id="spring", concept_name="Spring sale", variables=[slot]),
               _with(creative("c2", minutes=2), concept_id="autumn"), creative("c3", minutes=3)]
    spring = list_creatives(library, {"filters": {"concept_ids": ["spring"]}})
    assert ids(spring) == ["c1"] and spring["creatives"][0]["concept_name"] == "Spring sale"
    assert "variables" not in spring["creatives"][0]  # include_variables decides
    assert ids(list_creatives(library, {"filters": {"has_variables": True}})) == ["c1"]
    assert ids(list_creatives(library, {"filters": {"has_variables": False}})) == ["c3", "c2"]
    shown = list_creatives(library, {"filters": {"has_variables": True}, "include_variables": True})
    assert shown["creatives"][0]["variables"] == [slot]
    assert shown["query_summary"]["filters_applied"] == ["has_variables"]
    assert validate_response("list_creatives", {"status": "completed", **shown}).valid
