"""What the sync engine tolerates of real sales agents, as pure rules: format ids on normalised
agent URLs, kinds of formats listed without one, payloads that carry only ids the agent listed,
versions declared as a major only, duplicates refused on a retry, list answers that ignore their
filters, and registry records written under an older registration."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from creative_sync.samples import display_creative, video_creative
from streams.matching.logic import kind_of_format, listed_formats, match, normalise_agent_url, formats_of, traits_of
from streams.sync.logic import accepts_webhooks, already_there, answers_for, choose_version, for_version
from topics.events import AdcpError, AgentProtocol, SalesAgent
from topics.views import RegistryView

pytestmark = pytest.mark.unit
REFERENCE = "https://creative.adcontextprotocol.org"


@pytest.mark.parametrize("url", ["https://creative.adcontextprotocol.org/", "HTTPS://Creative.AdContextProtocol.org",
                                 "https://creative.adcontextprotocol.org:443/", "https://creative.adcontextprotocol.org"])
def test_agent_urls_compare_without_case_default_port_or_trailing_slash(url):
    assert normalise_agent_url(url) == REFERENCE


def test_a_non_default_port_and_a_path_are_kept():
    assert normalise_agent_url("http://ads.example:8080/formats/") == "http://ads.example:8080/formats"
    assert normalise_agent_url("not a url/") == "not a url"


@pytest.mark.parametrize(("fmt", "kind"), [
    ({"format_id": {"id": "display_300x250"}}, "image"),
    ({"format_id": {"id": "display_300x250_image"}}, "image"),
    ({"format_id": {"id": "display_300x250_html"}}, "html5"),
    ({"format_id": {"id": "video_30s"}}, "video_hosted"),
    ({"format_id": {"id": "video_vast_30s"}}, "video_vast"),
    ({"format_id": {"id": "audio_30s"}}, "audio_hosted"),
    ({"format_id": {"id": "native_standard"}}, "native_in_feed"),
    ({"format_id": {"id": "homepage_takeover"}, "type": "video"}, "video_hosted"),
    ({"format_id": {"id": "spot"}, "assets": [{"asset_type": "vast"}]}, "video_vast"),
    ({"format_id": {"id": "anything"}, "canonical": {"kind": "audio_daast"}}, "audio_daast"),
    ({"format_id": {"id": "mystery"}}, None),
])
def test_a_listed_formats_kind_comes_from_its_definition_or_the_reference_ids(fmt, kind):
    assert kind_of_format(fmt) == kind


LISTED = listed_formats([{"format_id": {"agent_url": REFERENCE + "/", "id": "display_300x250_image"}},
                         {"format_id": {"agent_url": REFERENCE + "/", "id": "display_728x90_image"}},
                         {"format_id": {"agent_url": REFERENCE + "/", "id": "video_30s"}}])


def _reference(creative_id: str) -> dict:
    creative = display_creative(creative_id)
    creative["format_id"] = {"agent_url": REFERENCE, "id": "display_300x250_image"}
    return creative


def test_a_slashless_format_id_matches_the_slashed_one_listed_and_goes_out_as_listed():
    agent = formats_of("Ref", [], [{"format_id": f.as_format_id()} for f in LISTED])
    assert match(traits_of(_reference("a")), agent).by == "format_id"
    sent, why = for_version(_reference("a"), "3.0", LISTED)
    assert why is None and sent["format_id"] == {"agent_url": REFERENCE + "/", "id": "display_300x250_image"}


def test_a_kind_goes_to_a_legacy_agent_only_under_an_id_it_listed_of_that_size_or_not_at_all():
    wide = {**display_creative("w", width=728, height=90), "format_kind": "image"}
    wide.pop("format_id")
    sent, why = for_version(wide, "3.0", LISTED)
    assert why is None and "format_kind" not in sent and sent["format_id"]["id"] == "display_728x90_image"
    tall = {**display_creative("t", width=160, height=600), "format_kind": "image"}
    tall.pop("format_id")
    assert for_version(tall, "3.1", LISTED) == (None, "The agent lists no image 160x600 format (it is sent only formats it lists)")
    sent, _ = for_version(video_creative("v", duration_ms=15_000), "3.0", LISTED)
    assert sent["format_id"]["id"] == "video_30s"
    assert for_version(video_creative("long", duration_ms=45_000), "3.0", LISTED)[0] is None


def test_a_32_agent_keeps_the_kind_and_an_agent_that_listed_nothing_gets_the_standard_id():
    kind_only = video_creative("v")
    assert for_version(kind_only, "3.2", LISTED)[0]["format_kind"] == "video_hosted"
    sent, _ = for_version(kind_only, "3.1", ())
    assert sent["format_id"] == {"agent_url": REFERENCE, "id": "video_hosted_16x9_30s"}


def test_an_id_the_agent_does_not_list_is_never_sent():
    unknown = display_creative("u")
    unknown["format_id"] = {"agent_url": "https://elsewhere.example", "id": "skin_takeover"}
    assert for_version(unknown, "3.2", LISTED)[0] is None


@pytest.mark.parametrize(("adcp", "expected"), [
    ({"major_versions": [3]}, (["3.0"], "3.0", "only major version 3")),
    ({"major_versions": [3], "supported_versions": ["3.0", "3.1"]}, (["3.0", "3.1"], "3.1", "highest version both speak")),
    ({"supported_versions": ["3.2", "3.3"]}, (["3.2", "3.3"], "3.2", "highest version both speak")),
    ({"major_versions": [2]}, (["2.0"], None, "no AdCP version in common")),
    ({}, ([], "3.0", "declares no AdCP version")),
])
def test_the_version_spoken_with_an_agent_and_why(adcp, expected):
    versions, chosen, reason = choose_version(("3.0", "3.1", "3.2"), adcp)
    assert (versions, chosen) == expected[:2] and expected[2] in reason


def test_webhook_support_is_what_the_agent_declares():
    assert accepts_webhooks({"webhook_signing": {"supported": True, "profile": "p"}})
    assert not accepts_webhooks({"webhook_signing": {"supported": False}}) and not accepts_webhooks({})


def test_a_duplicate_refusal_means_the_agent_has_the_creative():
    assert already_there([AdcpError(code="CREATIVE_ALREADY_EXISTS", message="x")])
    assert already_there([AdcpError(code="ERROR", message="Creative c1 already exists")])
    assert not already_there([AdcpError(code="INVALID_FORMAT", message="bad")]) and not already_there([])


def test_list_items_are_picked_out_when_the_agent_ignores_filters():
    assert answers_for({"creative_id": "c1"}, "acct-1", {"c1"})
    assert not answers_for({"creative_id": "c9"}, "acct-1", {"c1"})
    assert not answers_for({"creative_id": "c1", "account": {"account_id": "acct-2"}}, "acct-1", {"c1"})
    assert answers_for({"creative_id": "c9"}, "acct-1", set())  # a sweep: any of the account's


def _agent(revision: int, url: str) -> SalesAgent:
    return SalesAgent(sales_agent_id="a", name="A", agent_url=url, protocol=AgentProtocol.MCP, revision=revision,
                      updated_at=datetime.now(UTC))


def test_a_registry_record_of_an_older_registration_is_ignored():
    view = RegistryView("unused:9092", "topic", codec=None, key_of=lambda a: a.sales_agent_id)
    view.apply(_agent(1, "http://old"))
    view.apply(_agent(2, "http://new"))  # update_sales_agent
    view.apply(_agent(1, "http://old").model_copy(update={"discovery_error": "refused"}))  # discovery of the old one
    assert (view.get("a").agent_url, view.get("a").discovery_error) == ("http://new", None)
    view.apply(_agent(2, "http://new").model_copy(update={"available": True}))  # discovery of the new one
    assert view.get("a").available


def test_a_32_agent_gets_the_kind_without_an_id_it_did_not_list():
    both = {**display_creative("b"), "format_kind": "image"}
    both["format_id"] = {"agent_url": "https://elsewhere.example", "id": "banner_xl"}
    sent, why = for_version(both, "3.2", LISTED)
    assert why is None and "format_id" not in sent and sent["format_kind"] == "image"
