"""The conformance table of the README (operation × transport × AdCP release), generated from the
operation registry and the schemas of the adcp package, so that it cannot drift:
`creative-sync conformance` prints it; tests/unit/test_conformance_table.py compares it with the README."""
from __future__ import annotations

from adcp.validation import get_validator

from gateway.operations import Registry
from streams.library.versions import SUPPORTED_VERSIONS

TRANSPORTS = ("MCP `/mcp`", "A2A `/a2a`", "REST `/api/v1`")
#: What a release's cell says beyond "yes" (limits of that release's shapes, as served here).
NOTES = {
    ("sync_accounts", "3.0"): "provisioning refused",
    ("sync_accounts", "3.1"): "by reference: 3.2",
    ("list_creatives", "3.0"): "by `format_id`",
    ("build_creative", "3.0"): "`target_format_id`",
}


def _release_cell(task: str, version: str) -> str:
    if get_validator(task, "request", version=version) is None:
        return "— (not in this release)"
    note = NOTES.get((task, version))
    return f"yes ({note})" if note else "yes"


def conformance_table(registry: Registry) -> str:
    """Markdown: one row per operation; every operation is served on every transport (one registry)."""
    header = ["Operation", *TRANSPORTS, *(f"AdCP {v}" for v in SUPPORTED_VERSIONS)]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for operation in sorted(registry, key=lambda op: (not op.adcp, op.name)):
        transports = ["yes"] * len(TRANSPORTS)
        if operation.adcp:
            releases = [_release_cell(operation.name, v) for v in SUPPORTED_VERSIONS]
        else:
            releases = ["any (ours)"] * len(SUPPORTED_VERSIONS)
        rows.append("| " + " | ".join([f"`{operation.name}`", *transports, *releases]) + " |")
    return "\n".join(rows) + "\n"
