"""build_creative as a creative library serves it: retrieval of a library creative (`creative_id`, or
the buyer's own `buyer_ref`) as a manifest in one or several target formats, with `macro_values`
bound (`streams.library.retrieval` decides what can be rendered where). Generation, transformation,
refinement, transformers and estimates are other creative-agent capabilities, declared false in
get_adcp_capabilities and refused here with UNSUPPORTED_FEATURE.
"""
from __future__ import annotations

import json
from typing import Any

from gateway import keys, library
from gateway.creatives import account_of, with_context
from gateway.errors import AdcpRequestError
from gateway.operations import Call, Operation
from streams.library import retrieval
from streams.library.formats import STANDARD_AGENT_URL

#: Inputs of the capabilities this agent declares false (generation, transformation, transformers,
#: refinement, representation sets, spend controls, evaluation, fan-out).
_OTHER_CAPABILITIES = ("message", "creative_manifest", "creative_representation_set", "transformer_id", "config",
                       "refine_from_build_variant_id", "max_spend", "max_creatives", "max_variants", "variant_axis",
                       "evaluator", "signal_conditions", "selection_strategy", "item_limit", "media_buy_id", "package_id")


def _refuse(error: retrieval.NotRenderable, status: int = 400) -> AdcpRequestError:
    return AdcpRequestError(status, error.code, error.message, field=error.field, suggestion=error.suggestion,
                            recovery="correctable")


async def _creative(call: Call, account_id: str) -> dict[str, Any]:
    params = call.params
    if isinstance(params.get("creative_id"), str):
        wanted = params["creative_id"]
        found = (await library.creatives(call.app, account_id, [wanted])).get(wanted)
        field = "creative_id"
    elif isinstance(params.get("buyer_ref"), str):
        wanted = params["buyer_ref"]
        found = await library.creative_by_buyer_ref(call.app, account_id, wanted)
        field = "buyer_ref"
    else:
        raise AdcpRequestError(400, "INVALID_REQUEST", "Name the library creative: creative_id (or your buyer_ref).",
                               field="creative_id", suggestion="list_creatives shows the library.")
    if found is None:
        raise AdcpRequestError(404, "CREATIVE_NOT_FOUND", f"No creative {wanted!r} in this account's library.",
                               field=field, suggestion="list_creatives shows the library.")
    if found.status == "archived":
        raise AdcpRequestError(400, "INVALID_STATE", f"Creative {found.creative_id!r} is archived.", field=field,
                               suggestion="Unarchive it with sync_creatives (status) first.")
    return {**json.loads(found.creative_json), "creative_id": found.creative_id, "name": found.name}


def _targets(params: dict[str, Any]) -> tuple[list[tuple[str, Any]], bool, bool]:
    """(field, target) pairs, whether the named-format path was used, whether several were asked for."""
    if "target_format_ids" in params:
        return [(f"target_format_ids[{i}]", t) for i, t in enumerate(params["target_format_ids"])], True, True
    if "target_capability_ids" in params:
        return [(f"target_capability_ids[{i}]", t) for i, t in enumerate(params["target_capability_ids"])], False, True
    if "target_format_id" in params:
        return [("target_format_id", params["target_format_id"])], True, False
    if "target_capability_id" in params:
        return [("target_capability_id", params["target_capability_id"])], False, False
    raise AdcpRequestError(400, "INVALID_REQUEST", "Name the target: target_format_id (or target_capability_id).",
                           field="target_format_id")


async def build_creative(call: Call) -> dict[str, Any]:
    params = call.params
    asked = [key for key in _OTHER_CAPABILITIES if key in params]
    if asked or params.get("mode") == "estimate":
        field = asked[0] if asked else "mode"
        raise AdcpRequestError(400, "UNSUPPORTED_FEATURE", f"{field}: this creative agent retrieves library creatives; "
                               "it does not generate, transform or estimate.", field=field,
                               suggestion="Send creative_id and target_format_id; get_adcp_capabilities says what is supported.")
    account_id = account_of(call, params.get("account"))
    creative = await _creative(call, account_id)
    targets, named, several = _targets(params)
    own_urls = (call.app[keys.SETTINGS].webhook_base_url,)
    macro_values = params.get("macro_values") or {}
    manifests, warnings = [], []
    for field, target in targets:
        try:
            known = retrieval.target_format(target, field_name=field, own_agent_urls=own_urls)
            built = retrieval.build_manifest(creative, known, macro_values, named_format=named,
                                             agent_url=STANDARD_AGENT_URL)
        except retrieval.NotRenderable as error:
            if error.code in ("FORMAT_NOT_SUPPORTED", "CREATIVE_SIZE_MISMATCH") and error.field != "macro_values":
                fitting = retrieval.renderable_formats(creative)
                error.field = field
                error.suggestion = (f"Creative {creative['creative_id']!r} can be rendered as: {', '.join(fitting)}."
                                    if fitting else "This creative cannot be rendered in any format of the catalogue.")
            raise _refuse(error) from None
        manifests.append(built.manifest)
        warnings.extend(built.warnings)
    body: dict[str, Any] = ({"creative_manifests": manifests} if several else
                            {"creative_manifest": manifests[0], "recipe_hash": retrieval.content_digest(manifests[0])})
    if warnings:
        body["ext"] = {"creative_sync": {"warnings": sorted(set(warnings))}}
    return with_context(body, params)


OPERATIONS = (
    Operation.task("build_creative", "Retrieve a library creative as a servable manifest in a target format (tags "
                   "for HTML5 and VAST formats), with macro values bound.", build_creative),
)
