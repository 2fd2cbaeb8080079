"""sync_creatives requests: validated against the official AdCP schemas (adcp.validation) and
normalised, the same way for the gateway and for commands produced straight onto the input topic.

Pure: no I/O beyond the schemas bundled with the adcp package.
"""
from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
from adcp.validation import get_validator, validate_request

from streams.library.versions import VersionRefused, requested_version
from topics.codec import to_json_bytes

MAX_CREATIVES = 100
_CREATIVE_POINTER = re.compile(r"^/creatives/(\d+)(/.*)?$")


@dataclass(frozen=True)
class Problem:
    """One AdCP error: {code, message, field?, suggestion?, recovery}."""

    code: str
    message: str
    field: str | None = None
    suggestion: str | None = None
    recovery: str = "correctable"

    def as_adcp(self) -> dict[str, Any]:
        error = {"code": self.code, "message": self.message, "recovery": self.recovery}
        if self.field:
            error["field"] = self.field
        if self.suggestion:
            error["suggestion"] = self.suggestion
        return error


class RequestRejected(Exception):
    """The whole request is refused: nothing is applied or published."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class SyncRequest:
    account_id: str
    idempotency_key: str
    creatives: list[dict[str, Any]]
    creative_ids: list[str] | None = None
    patch: bool = False
    dry_run: bool = False
    validation_mode: str = "strict"
    delete_missing: bool = False
    assignments: list[dict[str, Any]] = field(default_factory=list)
    assignment_operations: list[dict[str, Any]] = field(default_factory=list)
    context: dict[str, Any] | None = None
    push_notification_config: dict[str, Any] | None = None
    adcp_version: str | None = None
    #: index in `creatives` -> why that creative is invalid (lenient mode applies the others)
    invalid: dict[int, list[Problem]] = field(default_factory=dict)


def _field_of(pointer: str) -> str:
    """JSON pointer /creatives/0/assets -> creatives[0].assets (the AdCP `field` style)."""
    parts = [p for p in pointer.split("/") if p]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "request"


def _version_of(payload: Mapping[str, Any]) -> str | None:
    """The release whose shapes serve the request (streams.library.versions decides)."""
    try:
        return requested_version(payload)
    except VersionRefused as refused:
        raise RequestRejected([Problem(refused.code, refused.message, refused.field, refused.suggestion)]) from None


@functools.cache
def _fast_validator(version: str | None) -> Any:
    """The very schema adcp.validation checks against, compiled by jsonschema-rs.

    adcp.validation (the python jsonschema package) costs ~0.8 ms a creative, which capped the
    gateway below 1,000 creatives/s on a core. jsonschema-rs answers the same yes/no in ~1.5 µs a
    creative. It only ever says "valid": any doubt goes to adcp.validation, which stays the
    authority for every error message (and agrees on the verdict: tests/unit/test_schema_check.py).
    """
    validator = get_validator("sync_creatives", "request", version=version)
    return jsonschema_rs.validator_for(validator.schema, validate_formats=True) if validator is not None else None


def _surely_valid(payload: Mapping[str, Any], version: str | None) -> bool:
    fast = _fast_validator(version)
    return fast is not None and len(payload.get("creatives") or ()) <= MAX_CREATIVES and fast.is_valid(payload)


def schema_problems(payload: Mapping[str, Any], version: str | None) -> list[tuple[str, Problem]]:
    """(pointer, problem) for every way `payload` breaks the sync_creatives request schema."""
    if _surely_valid(payload, version):
        return []
    outcome = validate_request("sync_creatives", dict(payload), version=version)
    return [(issue.pointer, Problem("VALIDATION_ERROR", f"{_field_of(issue.pointer)}: {issue.message}",
                                    _field_of(issue.pointer), issue.hint)) for issue in outcome.issues]


def creative_problems(creative: Mapping[str, Any], version: str | None = None) -> list[Problem]:
    """Why one (complete, e.g. merged) creative is invalid; [] when it is valid."""
    probe = {"account": {"account_id": "probe"}, "idempotency_key": "probe-key-0000000", "creatives": [dict(creative)]}
    return [Problem(p.code, p.message.replace("creatives[0].", "").replace("creatives[0]", "creative"),
                    (p.field or "").replace("creatives[0].", "") or None, p.suggestion)
            for _, p in schema_problems(probe, version)]


def parse_sync_request(payload: Any, *, schema_checked: bool = False) -> SyncRequest:
    """The normalised request, or RequestRejected with every envelope problem.

    `schema_checked`: the sender already ran the AdCP schema check on this very payload (and
    refused or kept its invalid creatives); every other check still runs.
    Per-creative schema problems do not reject the request: they are returned in `invalid`, and
    the validation mode decides (strict: refuse all; lenient: apply the others). With `patch`,
    creatives are partial and are validated after merging, by the library.
    """
    if not isinstance(payload, Mapping):
        raise RequestRejected([Problem("INVALID_REQUEST", "The request must be a JSON object.")])
    problems: list[Problem] = []
    account = payload.get("account")
    if not isinstance(account, Mapping) or not isinstance(account.get("account_id"), str) or not account["account_id"]:
        problems.append(Problem("ACCOUNT_REQUIRED" if account is None else "INVALID_REQUEST",
                                "account.account_id is required.", "account.account_id",
                                "Send the account this library belongs to: {\"account\": {\"account_id\": \"...\"}}."))
    key = payload.get("idempotency_key")
    if not isinstance(key, str) or not 16 <= len(key) <= 255:
        problems.append(Problem("INVALID_REQUEST", "idempotency_key is required: a string of 16 to 255 characters.",
                                "idempotency_key", "Generate a UUID per logical request and reuse it on retries."))
    version = _version_of(payload)
    creatives = payload.get("creatives")
    if creatives is not None and not isinstance(creatives, list):
        problems.append(Problem("INVALID_REQUEST", "creatives must be an array.", "creatives"))
        creatives = None
    creatives = creatives or []
    if len(creatives) > MAX_CREATIVES:
        problems.append(Problem("INVALID_REQUEST", f"At most {MAX_CREATIVES} creatives per request ({len(creatives)} sent).",
                                "creatives", "Split the library into several requests."))
    seen: dict[str, int] = {}
    for index, creative in enumerate(creatives):
        creative_id = creative.get("creative_id") if isinstance(creative, Mapping) else None
        if isinstance(creative_id, str):
            if creative_id in seen:
                problems.append(Problem("INVALID_REQUEST", f"creative_id {creative_id!r} appears twice "
                                        f"(creatives[{seen[creative_id]}] and creatives[{index}]).",
                                        f"creatives[{index}].creative_id"))
            seen.setdefault(creative_id, index)
    creative_ids = payload.get("creative_ids")
    if payload.get("delete_missing") and creative_ids is not None:
        problems.append(Problem("INVALID_REQUEST", "delete_missing cannot be combined with creative_ids.", "delete_missing",
                                "Drop creative_ids to replace the whole library, or drop delete_missing."))
    patch = payload.get("patch", False)
    if not isinstance(patch, bool):
        problems.append(Problem("INVALID_REQUEST", "patch must be a boolean.", "patch"))
    if problems:
        raise RequestRejected(problems)

    # The schema check: envelope problems refuse the request; creative problems are per creative.
    checked = dict(payload)
    checked.pop("patch", None)  # our extension (the schema allows extra fields; kept out of the check anyway)
    if patch:
        checked["creatives"] = [_complete_for_check(c) for c in creatives]
    invalid: dict[int, list[Problem]] = {}
    envelope: list[Problem] = []
    # The AdCP schema check is done once, by whoever received the request.
    for pointer, problem in ([] if schema_checked else schema_problems(checked, version)):
        match = _CREATIVE_POINTER.match(pointer)
        if match and isinstance(creatives[int(match.group(1))], Mapping):
            if not patch:  # patched creatives are checked once merged with what is stored
                invalid.setdefault(int(match.group(1)), []).append(problem)
        else:
            envelope.append(problem)
    if envelope:
        raise RequestRejected(envelope)
    return SyncRequest(
        account_id=payload["account"]["account_id"],
        idempotency_key=key,
        creatives=[dict(c) for c in creatives],
        creative_ids=[str(c) for c in creative_ids] if creative_ids is not None else None,
        patch=patch,
        dry_run=bool(payload.get("dry_run", False)),
        validation_mode=str(payload.get("validation_mode") or "strict"),
        delete_missing=bool(payload.get("delete_missing", False)),
        assignments=list(payload.get("assignments") or []),
        assignment_operations=list(payload.get("assignment_operations") or []),
        context=payload.get("context"),
        push_notification_config=payload.get("push_notification_config"),
        adcp_version=version,
        invalid=invalid,
    )


def _complete_for_check(creative: Any) -> Any:
    """A patch creative made schema-complete with placeholders, so that only the envelope is checked here."""
    if not isinstance(creative, Mapping):
        return creative
    return {"name": "patch", "assets": {}, **creative} if "creative_id" in creative else creative


REDACTED = "[kept by the gateway]"


def without_secrets(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The request as it may travel on a topic: the buyer's webhook credentials
    (push_notification_config.authentication.credentials) stay with the gateway that sends the
    webhook; nothing downstream needs them."""
    config = payload.get("push_notification_config")
    authentication = config.get("authentication") if isinstance(config, Mapping) else None
    if not isinstance(authentication, Mapping) or "credentials" not in authentication:
        return dict(payload)
    return {**payload, "push_notification_config": {**config, "authentication": {**authentication, "credentials": REDACTED}}}


def payload_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a request: equal payloads replay, different ones conflict."""
    return hashlib.sha256(to_json_bytes(payload)).hexdigest()


def task_id_for(account_id: str, idempotency_key: str, request_hash: str) -> str:
    """Deterministic: a retry of the same request is the same task; another payload under the same
    key is another task (whose answer is IDEMPOTENCY_CONFLICT) and never overwrites the first."""
    return "task_" + hashlib.sha256(f"{account_id}\x00{idempotency_key}\x00{request_hash}".encode()).hexdigest()[:32]
