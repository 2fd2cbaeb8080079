"""What every operation's input goes through (gateway.validation): depth, encodable strings, odd
characters in ids, and the operation's schema, each refused with the field named."""
from __future__ import annotations

import json

import pytest

from gateway.creatives import OPERATIONS as CREATIVE_OPERATIONS
from gateway.errors import AdcpErrors, AdcpRequestError
from gateway.validation import MAX_DEPTH, check_input, check_shape, compile_schema, parse_body
from topics.ids import account_in, public, scoped

pytestmark = pytest.mark.unit
LIST_CREATIVES = next(op for op in CREATIVE_OPERATIONS if op.name == "list_creatives")


def refusal(call) -> AdcpRequestError:  # noqa: ANN001
    with pytest.raises(AdcpRequestError) as refused:
        call()
    assert refused.value.status == 400
    return refused.value


def test_json_nested_ten_thousand_deep_is_a_400_not_a_crash():
    deep = b"[" * 10_000 + b"]" * 10_000
    assert "deeper" in refusal(lambda: parse_body(deep)).message
    just_over = json.loads("[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2))
    assert "deeper" in refusal(lambda: check_shape({"context": just_over})).message


@pytest.mark.parametrize("params, field", [
    ({"name": "ok\ud800"}, "name"),
    ({"creative_ids": ["fine", "bad\udfff"]}, "creative_ids[1]"),
    ({"filters": {"\ud83d": 1}}, "filters.\ud83d"),
    ({"name": "nul\x00inside"}, "name"),
])
def test_strings_that_cannot_be_stored_are_refused_with_the_field(params, field):
    assert refusal(lambda: check_shape(params)).field == field


@pytest.mark.parametrize("odd", ["\u202eevil", "zero\u200bwidth", "tab\tid", "bidi\u2066x", "\ufeffbom"])
def test_ids_with_invisible_control_or_bidi_characters_are_refused(odd):
    assert refusal(lambda: check_shape({"campaign_id": odd})).field == "campaign_id"
    assert refusal(lambda: check_shape({"sales_agent_ids": [odd]})).field == "sales_agent_ids[0]"
    check_shape({"name": odd.replace("\t", " ")})  # a name is free text


@pytest.mark.parametrize("params, field", [
    ({"filters": "all"}, "filters"), ({"sort": 3}, "sort"), ({"pagination": []}, "pagination"),
    ({"fields": "name"}, "fields"), ({"filters": {"created_after": "2026-01-01T00:00:00"}}, "filters.created_after"),
    ({"pagination": {"cursor": 5}}, "pagination.cursor"),
])
def test_wrong_types_and_naive_date_times_are_refused_by_the_schema(params, field):
    validator = compile_schema(LIST_CREATIVES.input_schema)
    with pytest.raises(AdcpErrors) as refused:
        check_input(validator, {"account": {"account_id": "a"}, **params})
    assert field in [e["field"] for e in refused.value.errors]
    assert all(e["code"] and e["recovery"] == "correctable" for e in refused.value.errors)


def test_a_missing_account_is_account_required():
    sync = next(op for op in CREATIVE_OPERATIONS if op.name == "sync_creatives")
    with pytest.raises(AdcpErrors) as refused:
        check_input(compile_schema(sync.check(sync.input_schema)), {"idempotency_key": "k" * 20, "creatives": []})
    assert refused.value.errors[0]["code"] == "ACCOUNT_REQUIRED" and refused.value.errors[0]["field"] == "account"


@pytest.mark.parametrize("account", ["acct-1", "a~b", "tenant/42", "ü"])
def test_scoped_ids_keep_accounts_apart_whatever_the_account_id_holds(account):
    assert public(scoped(account, "campaign-1")) == "campaign-1"
    assert account_in(scoped(account, "campaign-1")) == account
    assert scoped(account, "x") != scoped(account + "-2", "x")


async def test_a_record_over_the_limit_is_a_413_before_anything_is_sent():
    from gateway.broker import BrokerLink
    from topics.catalogue import MAX_MESSAGE_BYTES

    link = BrokerLink("127.0.0.1:1")  # never connected: the size is refused first, not "retry"
    with pytest.raises(AdcpRequestError) as refused:
        await link.publish("t", b"k", b"v" * (MAX_MESSAGE_BYTES + 1))
    assert refused.value.status == 413 and refused.value.recovery == "correctable"
