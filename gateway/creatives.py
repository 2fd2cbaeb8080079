"""The AdCP creative tasks: sync_creatives, list_creatives, get_task_status, list_creative_formats and
get_adcp_capabilities, as operations of the registry (MCP tools and REST routes alike).

sync_creatives is validated here, published as a library command (keyed by account) and answered
by the library processor through the task-results topic: `completed` when the answer (and its
changes, for read-your-writes) arrive within the request budget, `submitted` otherwise, with a
task webhook when `push_notification_config` asks for one. dry_run is rehearsed by the worker that
owns the account, against its library, and publishes nothing. list_creatives is a page computed by
the owners of the accounts read (gateway/library.py).
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from gateway import keys, library
from gateway.accounts import account_view
from gateway.errors import AdcpErrors, AdcpRequestError, OutcomeUnknown
from gateway.operations import Call, Operation
from gateway.scope import target_url
from streams.library import logic
from streams.library.versions import SUPPORTED_VERSIONS
from streams.library.formats import list_formats, supported_formats
from streams.library.queries import QueryError, parse_query
from streams.library.requests import (RequestRejected, parse_sync_request,
                                      payload_hash, task_id_for, without_secrets)
from topics.catalogue import topic
from topics.events import LibraryCommand, LibraryOperation, TaskResult, TaskStatus

_UNCONFIRMED = ("The broker did not confirm the request in time; it may be applying it. Poll get_task_status: "
                "if it still says working after a minute, send the same request again with the same idempotency_key "
                "(applied at most once).")


def _envelope_of(schema: dict[str, Any]) -> dict[str, Any]:
    """sync_creatives' schema with each creative only required to be an object: the creatives are
    checked by the handler against the request's version, and the validation mode decides whether
    an invalid one refuses the request (strict) or only itself (lenient)."""
    properties = {**schema.get("properties", {}), "creatives": {"type": "array", "items": {"type": "object"}}}
    return {**schema, "properties": properties}


def account_of(call: Call, account: Any, field: str = "account") -> str:
    """The account a request names; optional (AdCP 3.2) for a principal that has only one."""
    if account is None and len(call.principal.accounts) == 1:
        return next(iter(call.principal.accounts))
    if isinstance(account, dict) and account and "account_id" not in account:  # a natural key (brand + operator)
        raise AdcpRequestError(400, "ACCOUNT_NOT_FOUND", "Accounts here are named by account_id.", field=field,
                               suggestion="list_accounts shows the account ids of this principal.")
    if not isinstance(account, dict) or not isinstance(account.get("account_id"), str):
        raise AdcpRequestError(400, "ACCOUNT_REQUIRED", "This principal acts for several accounts: name one.",
                               field=f"{field}.account_id",
                               suggestion=f"Send {{\"account\": {{\"account_id\": ...}}}} with one of: "
                                          f"{', '.join(sorted(call.principal.accounts))}.")
    call.principal.require_account(account["account_id"])
    return account["account_id"]


def with_context(body: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    if "context" in params:
        body["context"] = params["context"]
    return body


# -- sync_creatives ------------------------------------------------------------------------------
async def sync_creatives(call: Call) -> dict[str, Any]:
    app, params = call.app, call.params
    try:
        request = parse_sync_request(params)
    except RequestRejected as rejected:
        raise AdcpErrors(400, [p.as_adcp() for p in rejected.problems]) from None
    call.principal.require_account(request.account_id)
    if request.invalid and request.validation_mode == "strict":
        raise AdcpErrors(400, [p.as_adcp() for problems in request.invalid.values() for p in problems])
    if request.push_notification_config is not None:
        await target_url(call, request.push_notification_config.get("url"), "push_notification_config.url")
    view = app[keys.LIBRARY_VIEW]
    now = datetime.now(UTC)
    if request.dry_run:
        rehearsed = await library.dry_run(app, request.account_id, params)
        if rehearsed.get("errors") and "creatives" not in rehearsed:
            raise AdcpErrors(400, rehearsed["errors"])
        return with_context(rehearsed, params)

    request_hash = payload_hash(params)
    task_id = task_id_for(request.account_id, request.idempotency_key, request_hash)
    command = LibraryCommand(command_id=task_id, account_id=request.account_id, principal_id=call.principal.principal_id,
                             operation=LibraryOperation.SYNC_CREATIVES, idempotency_key=request.idempotency_key,
                             request_json=json.dumps(without_secrets(params), sort_keys=True, separators=(",", ":")),
                             received_at=now,
                             # checked here; with invalid creatives (lenient) the library finds them again itself
                             schema_checked=not request.invalid)
    answer = view.expect(task_id, fresh=True)  # before publishing: the answer may come back at once
    settings, codecs = app[keys.SETTINGS], app[keys.CODECS]
    known = app[keys.TASKS].get(task_id) is not None  # a retry of a request already submitted
    app[keys.TASKS].submitted(task_id, request.account_id, "sync_creatives", now, request.push_notification_config)
    try:
        await app[keys.BROKER].publish(topic("library_commands").full_name(settings.topic_prefix),
                                       key=codecs.key("library_commands").encode(command.account_id),
                                       value=codecs.value("library_commands").encode(command))
    except OutcomeUnknown:
        # The command may have landed: the honest answer is the task, whose id is the same for a
        # retry of this request (applied at most once), not "nothing was applied".
        app[keys.TASKS].watch(task_id)
        return with_context({"status": "submitted", "task_id": task_id, "message": _UNCONFIRMED}, params)
    except AdcpRequestError:
        if not known:
            app[keys.TASKS].forget(task_id)
        raise
    app[keys.METRICS].published.labels("library_commands").inc()
    # Read-your-writes: the owner writes the library before it publishes the answer, and reads are
    # asked of the owner, so once the answer is here every read of this account sees the changes.
    result = await view.settle(task_id, answer, settings.request_budget_s)
    if result is None:
        app[keys.TASKS].watch(task_id)  # the final answer goes to get_task_status and the webhook
        return with_context({"status": "submitted", "task_id": task_id,
                              "message": "Accepted; the library is applying it. Poll get_task_status or await the webhook."},
                             params)
    return _answer(result, params)


def _answer(result: TaskResult, params: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(result.result_json)
    if body.get("errors") and "creatives" not in body:
        status = 409 if body["errors"][0].get("code") == "IDEMPOTENCY_CONFLICT" else 400
        raise AdcpErrors(status, body["errors"], {"context": params["context"]} if "context" in params else None)
    return with_context(body, params)


# -- list_creatives ------------------------------------------------------------------------------
async def list_creatives(call: Call) -> dict[str, Any]:
    params = call.params
    chosen = (params.get("filters") or {}).get("accounts")
    try:
        query = parse_query(params)
    except QueryError as error:
        raise AdcpRequestError(400, "INVALID_REQUEST", str(error), field=error.field) from None
    if chosen:  # an agency reading several of its accounts' libraries at once
        account_ids = sorted({account_of(call, ref, field="filters.accounts") for ref in chosen})
        body = await library.page(call.app, query, account_ids, {a: account_view(a) for a in account_ids}, params.get("fields"))
    else:
        body = await library.page(call.app, query, [account_of(call, params.get("account"))], None, params.get("fields"))
    return with_context(body, params)


# -- get_task_status -----------------------------------------------------------------------------
async def get_task_status(call: Call) -> dict[str, Any]:
    task_id = call.params.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise AdcpRequestError(400, "INVALID_REQUEST", "task_id is required.", field="task_id")
    app = call.app
    result = app[keys.LIBRARY_VIEW].tasks.get(task_id)
    app[keys.METRICS].cache_lookups.labels("task_results", "hit" if result is not None else "miss").inc()
    pending = app[keys.TASKS].get(task_id)
    account_id = result.account_id if result is not None else (pending.account_id if pending else None)
    if account_id is None or account_id not in call.principal.accounts:
        # Another account's task is indistinguishable from an unknown one.
        raise AdcpRequestError(404, "REFERENCE_NOT_FOUND", f"No task {task_id} for this principal.", field="task_id")
    created = pending.created_at if pending else result.completed_at
    body: dict[str, Any] = {"task_id": task_id, "task_type": result.task_type if result else pending.task_type,
                            "protocol": "creative", "created_at": created.isoformat(),
                            "has_webhook": bool(pending and pending.push_notification_config)}
    if result is None:
        body.update(status="working", updated_at=datetime.now(UTC).isoformat())
    else:
        answer = json.loads(result.result_json)
        failed = result.status is TaskStatus.FAILED
        body.update(status="failed" if failed else "completed", updated_at=result.completed_at.isoformat(),
                    completed_at=result.completed_at.isoformat())
        if call.params.get("include_result", True):
            body["result"] = answer
        if failed and answer.get("errors"):
            body["error"] = {"code": answer["errors"][0]["code"], "message": answer["errors"][0]["message"]}
    return with_context(body, call.params)


# -- discovery -----------------------------------------------------------------------------------
async def list_creative_formats(call: Call) -> dict[str, Any]:
    params = call.params
    ids = [f.get("id") if isinstance(f, dict) else str(f) for f in params.get("format_ids") or []]
    return with_context({"formats": list_formats(format_ids=ids or None, kinds=params.get("format_kinds"))}, params)


async def get_adcp_capabilities(call: Call) -> dict[str, Any]:
    ttl = int(logic.REPLAY_TTL.total_seconds())
    return with_context({
        "adcp": {"major_versions": [3], "supported_versions": list(SUPPORTED_VERSIONS),
                 "idempotency": {"supported": True, "replay_ttl_seconds": ttl}},
        "supported_protocols": ["creative"],
        # Task webhooks are signed with the RFC 9421 profile (Ed25519, JWKS at /.well-known/jwks.json),
        # or with legacy HMAC-SHA256 / Bearer when the buyer's push_notification_config asks for it.
        "webhook_signing": {"supported": True, "profile": "adcp/webhook-signing/v1", "algorithms": ["ed25519"],
                            "legacy_hmac_fallback": True,
                            # (the schema's floor is a day; ours retries for about a minute and a half)
                            "delivery_retry_horizon_seconds": max(86400, int(call.app[keys.TASKS].retry_horizon_s))},
        # A library: list_creatives, and build_creative retrieving a library creative as a manifest
        # in the formats of supported_formats (no generation, transformation or refinement).
        "creative": {"has_creative_library": True, "supports_compliance": False, "supports_generation": False,
                     "supports_transformation": False, "supports_refinement": False, "supports_transformers": False,
                     "supports_spend_controls": False, "supported_formats": supported_formats()},
        "last_updated": call.app[keys.STARTED_AT].isoformat(),
    }, call.params)


OPERATIONS = (
    Operation.task("get_adcp_capabilities", "What this agent speaks: AdCP versions, creative library, idempotency.",
                   get_adcp_capabilities),
    Operation.task("list_creative_formats", "The creative formats this library knows (display, video, audio, native, HTML5).",
                   list_creative_formats),
    Operation.task("sync_creatives", "Create, update, patch, archive and assign creatives in an account's library "
                   "(AdCP 3.2 upsert semantics; `patch: true` updates only the fields given).",
                   sync_creatives, check=_envelope_of),
    Operation.task("list_creatives", "Query an account's library: filters, sort, cursor pagination, field projection.",
                   list_creatives),
    Operation.task("get_task_status", "The state, and when done the result, of a submitted task.",
                   get_task_status, tags=("tasks",)),
)
