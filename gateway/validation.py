"""What every operation's input goes through before its handler sees it, whichever transport it
came by (REST or MCP): JSON with bounded depth, strings that can be stored and shown, ids without
invisible or control characters, and the operation's JSON Schema. One mechanism for all
operations, so that a new operation is guarded without writing a line for it.

Pure: no I/O. Every refusal is an AdCP error naming the field.
"""
from __future__ import annotations

import functools
import json
import re
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit
from typing import Any

import adcp
import jsonschema_rs

from gateway.errors import AdcpErrors, AdcpRequestError, invalid

MAX_DEPTH = 32  # AdCP payloads nest ~8 deep (creative → assets → asset → …); more is an attack
MAX_ERRORS = 20  # schema problems reported at once
#: Characters an id may never contain: controls, format characters (bidi overrides, zero-width
#: joiners), surrogates, private use, unassigned. They make two ids look alike, or one id look
#: like another in a console.
_ODD_IN_IDS = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def parse_body(raw: bytes) -> Any:
    """The JSON of a request body (empty: {}), or a 400 that says why not."""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except RecursionError:
        raise invalid(f"The body nests deeper than {MAX_DEPTH} levels.") from None
    except (ValueError, UnicodeDecodeError):
        raise invalid("The body is not valid JSON (UTF-8).") from None


def _field(path: list[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "request"


def _is_id_field(path: list[str | int]) -> bool:
    names = [p for p in path if isinstance(p, str)]
    name = names[-1] if names else ""
    return name.endswith(("_id", "_ids", "_key")) or name == "id"


_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _string_problem(value: str, path: list[str | int], *, is_key: bool) -> AdcpRequestError | None:
    # The common case first, without naming the field: an ASCII string can hold no surrogate, and
    # of the characters refused in ids, only controls (a walk of every string of 100 creatives was
    # a third of the gateway's work in sync_creatives when each one named its field up front).
    if value.isascii() and "\x00" not in value and (is_key or not _ASCII_CONTROL.search(value) or not _is_id_field(path)):
        return None
    where = _field(path) + (" (a key)" if is_key else "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return invalid(f"{where}: the string holds a lone UTF-16 surrogate and cannot be stored.", _field(path))
    if "\x00" in value:
        return invalid(f"{where}: NUL characters are not allowed.", _field(path))
    if not is_key and _is_id_field(path) and any(unicodedata.category(c) in _ODD_IN_IDS for c in value):
        return invalid(f"{where}: ids may not contain control, invisible or bidirectional-override characters.",
                       _field(path))
    return None


def check_shape(params: Any) -> None:
    """Depth and strings of a parsed request: walked without recursion (a deep document must not
    be able to exhaust the stack here either)."""
    stack: list[tuple[Any, list[str | int], int]] = [(params, [], 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise invalid(f"The request nests deeper than {MAX_DEPTH} levels.", _field(path))
        if isinstance(value, str):
            problem = _string_problem(value, path, is_key=False)
            if problem:
                raise problem
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = _string_problem(key, [*path, key], is_key=True)
                if problem:
                    raise problem
                stack.append((item, [*path, key], depth + 1))
        elif isinstance(value, list):
            stack.extend((item, [*path, index], depth + 1) for index, item in enumerate(value))


#: Where the adcp package keeps the schemas of each release (those of 3.0 and 3.1 refer to each
#: other by path: `/schemas/3.0.18/core/x.json`, `../core/x.json`).
_SCHEMAS = (Path(adcp.__file__).parent / "_schemas").resolve()
_SCHEMA_HOST = "https://adcontextprotocol.org/"
_NOT_TASK_SCHEMAS = frozenset({"bundled", "mcp", "async-response-refs"})


def _bundled_schema(uri: str) -> Any:
    """A schema another one refers to, read from the adcp package: never fetched from the network."""
    if "/schemas/" in uri:  # https://adcontextprotocol.org/schemas/3.2.4/... or file:///schemas/3.0.18/...
        release, rest = uri.split("/schemas/", 1)[1].split("/", 1)
        path = (_SCHEMAS / ".".join(release.split(".")[:2]) / rest).resolve()
    else:
        path = Path(urlsplit(uri).path).resolve()
    if _SCHEMAS not in path.parents:
        raise ValueError(f"schema {uri} is not one of the adcp package's")
    return json.loads(path.read_text())


@functools.cache
def schema_location(tool: str, version: str) -> str | None:
    """The URI of a task's request schema file in a release (what its relative references start from)."""
    name = f"{tool.replace('_', '-')}-request.json"
    for path in sorted((_SCHEMAS / version).rglob(name)):
        if not _NOT_TASK_SCHEMAS & set(path.relative_to(_SCHEMAS / version).parts):
            return path.as_uri()
    return None


def compile_schema(schema: dict[str, Any], base_uri: str | None = None) -> Any:
    """A validator of `schema` (jsonschema-rs: the AdCP schemas are large, and the check runs on
    every request), checking formats too: a date-time without its offset is refused here."""
    return jsonschema_rs.validator_for(schema, validate_formats=True, retriever=_bundled_schema,
                                       base_uri=base_uri or _SCHEMA_HOST)


def schema_errors(validator: Any, params: Any) -> list[dict[str, Any]]:
    """AdCP errors for every way `params` breaks the compiled schema (at most MAX_ERRORS)."""
    errors = []
    for error in validator.iter_errors(params):
        path = list(error.instance_path)
        if type(error.kind).__name__ == "Required":
            path.append(error.kind.property)
            code = "ACCOUNT_REQUIRED" if path == ["account"] else "INVALID_REQUEST"
            message = f"{_field(path)} is required."
        else:
            code, message = "INVALID_REQUEST", f"{_field(path)}: {error.message[:300]}"
        errors.append({"code": code, "message": message, "field": _field(path), "recovery": "correctable"})
        if len(errors) == MAX_ERRORS:
            break
    return errors


def check_arguments(params: Any) -> dict[str, Any]:
    """The arguments are a JSON object whose strings and nesting can be looked at safely."""
    if not isinstance(params, dict):
        raise invalid("The arguments must be a JSON object.")
    check_shape(params)
    return params


def check_against(validator: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The arguments when they conform to the compiled schema; else an AdCP error for every way they do not."""
    errors = schema_errors(validator, params)
    if errors:
        raise AdcpErrors(400, errors)
    return params


def check_input(validator: Any, params: Any) -> dict[str, Any]:
    """The request's arguments when they may be handed to the operation; else an AdCP error."""
    return check_against(validator, check_arguments(params))


#: How deep a discovery schema describes the arguments (top-level fields and their fields).
DISCOVERY_DEPTH = 2
_KEPT = ("type", "enum", "const", "format", "pattern", "minimum", "maximum", "minItems", "maxItems", "minLength",
         "maxLength", "default")


def discovery_schema(schema: dict[str, Any], depth: int = DISCOVERY_DEPTH) -> dict[str, Any]:
    """What tools/list advertises: the arguments two levels deep (types, enums, required, short
    descriptions), the official schema's name for the rest. The official request schemas inline
    every definition (sync_creatives' is 400 KB, build_creative's 1.5 MB); requests are still
    validated against the whole official schema, this only keeps discovery small."""
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    compact = _compact(schema, depth, defs, seen=frozenset())
    compact["type"] = "object"
    if schema.get("title"):
        compact["description"] = f"{schema['title']} (AdCP). Full schema: the adcp package's '{schema['title']}'."
    return compact


def _compact(node: Any, depth: int, defs: dict[str, Any], seen: frozenset[str]) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen or name not in defs:
            return {"description": str(node.get("description", ""))[:160]} if node.get("description") else {}
        return _compact({**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}, depth, defs, seen | {name})
    out: dict[str, Any] = {k: node[k] for k in _KEPT if k in node and not isinstance(node[k], dict | list) or k == "enum" and k in node}
    if node.get("description"):
        out["description"] = str(node["description"])[:160]
    properties = node.get("properties")
    if isinstance(properties, dict) and depth > 0:
        out["properties"] = {k: _compact(v, depth - 1, defs, seen) for k, v in properties.items()}
        if isinstance(node.get("required"), list):
            out["required"] = node["required"]
    if isinstance(node.get("items"), dict) and depth > 0:
        out["items"] = _compact(node["items"], depth - 1, defs, seen)
    return out
