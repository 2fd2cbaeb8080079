"""The AdCP accounts protocol as a creative library serves it (3.2: "creative agents with a library
should also implement the accounts protocol"): `list_accounts` shows the accounts the principal acts
for, `sync_accounts` confirms access to them.

Accounts are provisioned by the operator (a principal is granted accounts with
`creative-sync principals add`), not by buyers: a provisioning entry (brand + operator + billing)
fails with UNSUPPORTED_PROVISIONING, and an account the principal does not hold is reported exactly
like one that does not exist.
"""
from __future__ import annotations

from typing import Any

from gateway.errors import AdcpRequestError
from gateway.operations import Call, Operation

#: Fields of a settings-update entry that are only addressing, not a change.
_ADDRESSING = frozenset({"account", "revision", "ext"})


def account_view(account_id: str) -> dict[str, Any]:
    # Accounts here have no lifecycle of their own: granted means usable. (Required by 3.2: status;
    # "sellers return timezone on every account": the library runs on UTC.)
    return {"account_id": account_id, "name": account_id, "status": "active", "timezone": "UTC"}


async def list_accounts(call: Call) -> dict[str, Any]:
    params = call.params
    wanted = (params.get("account") or {}).get("account_id")
    accounts = [account_view(a) for a in sorted(call.principal.accounts) if wanted in (None, a)]
    if params.get("status") not in (None, "active") or params.get("sandbox") is True:
        accounts = []  # every account here is an active production account
    pagination = params.get("pagination") or {}
    size = pagination.get("max_results", 100)
    start = int(pagination["cursor"]) if str(pagination.get("cursor", "")).isdigit() else 0
    page = accounts[start:start + size]
    more = start + size < len(accounts)
    body: dict[str, Any] = {"accounts": page, "pagination": {"has_more": more, "total_count": len(accounts),
                                                             **({"cursor": str(start + size)} if more else {})}}
    if "context" in params:
        body["context"] = params["context"]
    return body


def _sync_entry(call: Call, entry: dict[str, Any]) -> dict[str, Any]:
    ref = entry.get("account")
    if not isinstance(ref, dict):
        # status: the seller declined the account request (3.0 and 3.1 require a status on every row)
        return {"brand": entry.get("brand") or {}, "operator": str(entry.get("operator") or ""), "action": "failed",
                "status": "rejected",
                "errors": [{"code": "UNSUPPORTED_PROVISIONING", "recovery": "terminal",
                            "message": "This creative library does not provision accounts: its operator grants them.",
                            "suggestion": "Ask the operator for access; list_accounts shows the accounts you have."}]}
    account_id = ref.get("account_id")
    if account_id not in call.principal.accounts:
        return {"account": ref, "action": "failed",
                "errors": [{"code": "ACCOUNT_NOT_FOUND", "recovery": "terminal", "field": "account",
                            "message": "No such account for this principal."}]}
    changes = sorted(set(entry) - _ADDRESSING)
    if changes:
        return {"account": ref, "action": "failed", "status": "active",
                "errors": [{"code": "UNSUPPORTED_FEATURE", "recovery": "correctable", "field": changes[0],
                            "message": f"Account settings ({', '.join(changes)}) are not kept by this library.",
                            "suggestion": "Send the account reference alone to confirm access."}]}
    return {"account": ref, "account_id": account_id, "name": account_id, "action": "unchanged", "status": "active",
            "timezone": "UTC"}


async def sync_accounts(call: Call) -> dict[str, Any]:
    params = call.params
    if params.get("delete_missing"):
        raise AdcpRequestError(400, "UNSUPPORTED_FEATURE", "Accounts are granted by the operator and cannot be "
                               "deactivated through sync_accounts.", field="delete_missing",
                               suggestion="Leave delete_missing out.")
    by_reference = [i for i, entry in enumerate(params["accounts"]) if "account" in entry]
    if by_reference and call.version in ("3.0", "3.1"):
        # Before 3.2 every result row names the account's brand and operator, which accounts granted
        # by the operator do not have: confirm access the 3.2 way.
        raise AdcpRequestError(400, "VERSION_UNSUPPORTED", "Confirming an account by reference needs AdCP 3.2 here.",
                               field=f"accounts[{by_reference[0]}].account",
                               suggestion="Send adcp_version 3.2, or call list_accounts.")
    body: dict[str, Any] = {"accounts": [_sync_entry(call, entry) for entry in params["accounts"]]}
    if params.get("dry_run"):
        body["dry_run"] = True
    if "context" in params:
        body["context"] = params["context"]
    return body


OPERATIONS = (
    Operation.task("list_accounts", "The accounts this principal acts for (AdCP accounts protocol).", list_accounts,
                   tags=("accounts",)),
    Operation.task("sync_accounts", "Confirm access to accounts; the operator provisions them (AdCP accounts protocol).",
                   sync_accounts, tags=("accounts",)),
)
