"""Hypothesis strategies generated from an operation's JSON Schema (the one tools/list and OpenAPI
publish): requests shaped like the schema, and requests with one poison the gateway must refuse
whatever the rest holds (a wrong type, an unencodable or invisible string, a date-time without
its offset, a nesting bomb, a missing required field).

Written here because hypothesis-jsonschema resolves no `$ref`s across the AdCP bundles and
generates only valid documents; the poisons are the point.
"""
from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20)
ids = st.sampled_from(["x", "campaign-1", "acct-1", "a" * 100, "ü-id", "1", "-", "creative_1.v2"])
aware_datetimes = st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(lambda d: d.isoformat())


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    for _ in range(10):
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema = target
    return schema


def _types(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type")
    return [declared] if isinstance(declared, str) else list(declared or [])


def shaped(schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> st.SearchStrategy:
    """Values that follow `schema`'s shape (types, enums, required properties), not its every rule."""
    root = root or schema
    schema = _resolve(schema, root)
    if not isinstance(schema, dict) or depth > 4:
        return json_values
    if "const" in schema:
        return st.just(schema["const"])
    if schema.get("enum"):
        return st.sampled_from(schema["enum"])
    for combinator in ("anyOf", "oneOf"):
        if schema.get(combinator):
            return st.one_of([shaped(sub, root, depth + 1) for sub in schema[combinator][:6]])
    types = _types(schema) or (["object"] if "properties" in schema else [])
    if not types:
        return json_values
    options = []
    for kind in types:
        if kind == "string":
            options.append(aware_datetimes if schema.get("format") == "date-time"
                           else st.just("https://example.com/x") if schema.get("format") == "uri" else ids | st.text(max_size=30))
        elif kind == "integer":
            options.append(st.integers(min_value=schema.get("minimum", -10), max_value=schema.get("maximum", 10 ** 6)))
        elif kind == "number":
            options.append(st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=10 ** 6))
        elif kind == "boolean":
            options.append(st.booleans())
        elif kind == "null":
            options.append(st.none())
        elif kind == "array":
            options.append(st.lists(shaped(schema.get("items", {}), root, depth + 1), max_size=3))
        elif kind == "object":
            properties = schema.get("properties", {})
            required = [name for name in schema.get("required", []) if name in properties]
            optional = {name: shaped(sub, root, depth + 1) for name, sub in properties.items() if name not in required}
            options.append(st.fixed_dictionaries({name: shaped(properties[name], root, depth + 1) for name in required},
                                                  optional=optional))
    return st.one_of(options)


def _wrong_type(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy | None:
    schema = _resolve(schema, root)
    types = _types(schema) if isinstance(schema, dict) else []
    if not types or any(k in schema for k in ("anyOf", "oneOf")):
        return None
    allowed = set(types) | ({"integer"} if "number" in types else set())
    samples = {"string": st.just("not-this-type"), "integer": st.integers(), "number": st.just(1.5), "boolean": st.booleans(),
               "array": st.just([1, "two"]), "object": st.just({"k": "v"}), "null": st.none()}
    wrong = [samples[t] for t in JSON_TYPES if t not in allowed and not (t == "integer" and "number" in allowed)]
    return st.one_of(wrong) if wrong else None


POISON_STRINGS = st.sampled_from(["lone \ud800 surrogate", "\udfff", "nul\x00byte"])
ODD_IDS = st.sampled_from(["\u202egnp.evil", "zero\u200bwidth", "tab\tid", "\ufeffbom", "ctrl\x07id"])


def _nest(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def poisoned(schema: dict[str, Any], base: dict[str, Any]) -> st.SearchStrategy:
    """`base` (a shaped request) with one poison the gateway must refuse, whatever else it holds."""
    properties = schema.get("properties", {})
    choices = []
    for name, sub in properties.items():
        wrong = _wrong_type(sub, schema)
        if wrong is not None:
            choices.append(wrong.map(lambda v, n=name: {**base, n: v}))
        choices.append(POISON_STRINGS.map(lambda v, n=name: {**base, n: v}))
        choices.append(POISON_STRINGS.map(lambda v, n=name: {**base, n: {v: 1}}))  # as a key
        if name.endswith(("_id", "_ids", "_key")):
            choices.append(ODD_IDS.map(lambda v, n=name: {**base, n: [v] if n.endswith("_ids") else v}))
        if _resolve(sub, schema).get("format") == "date-time":
            choices.append(st.just({**base, name: "2026-01-01T00:00:00"}))  # naive: no offset
    choices.append(st.integers(min_value=40, max_value=200).map(lambda d: {**base, "context": {"deep": _nest(d)}}))
    for name in schema.get("required", []):
        if name in base:
            choices.append(st.just({k: v for k, v in base.items() if k != name}))
    return st.one_of(choices)
