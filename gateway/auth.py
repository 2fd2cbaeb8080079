"""Principals: bearer tokens (stored as SHA-256 hashes only) mapped to the accounts they may act for.

This module's store is a JSON file, re-read when it changes: the tests' and a broker-less setup's.
A cluster keeps its principals on a topic (gateway.principals); a gateway accepts either.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import AdcpRequestError


@dataclass(frozen=True)
class Principal:
    principal_id: str
    name: str
    accounts: frozenset[str]

    def require_account(self, account_id: str) -> None:
        if account_id not in self.accounts:
            raise AdcpRequestError(403, "PERMISSION_DENIED", "This principal may not act for that account.",
                                   field="account.account_id", recovery="terminal")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class PrincipalStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._by_hash: dict[str, Principal] = {}

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._by_hash, self._mtime = {}, None
            return
        if mtime == self._mtime:
            return
        data = json.loads(self.path.read_text() or "{}")
        self._by_hash = {
            entry["token_sha256"]: Principal(entry["principal_id"], entry.get("name", ""), frozenset(entry["accounts"]))
            for entry in data.get("principals", [])
        }
        self._mtime = mtime

    def authenticate(self, token: str | None) -> Principal | None:
        if not token:
            return None
        with self._lock:
            self._load()
            candidate = token_hash(token)
            for stored_hash, principal in self._by_hash.items():
                if hmac.compare_digest(stored_hash, candidate):
                    return principal
        return None

    def add(self, name: str, accounts: list[str]) -> tuple[Principal, str]:
        """Creates a principal; returns it and its token (the only time the token exists in clear)."""
        token = secrets.token_urlsafe(32)
        principal = Principal(f"p_{secrets.token_hex(6)}", name, frozenset(accounts))
        with self._lock:
            data = json.loads(self.path.read_text() or "{}") if self.path.exists() else {}
            data.setdefault("principals", []).append({
                "principal_id": principal.principal_id, "name": name, "accounts": sorted(accounts),
                "token_sha256": token_hash(token),
            })
            self._write(data)
        return principal, token


    def listed(self) -> list[tuple[str, str, list[str], bool]]:
        """(id, name, accounts, revoked) of each principal in the file."""
        data = json.loads(self.path.read_text() or "{}") if self.path.exists() else {}
        return [(e["principal_id"], e.get("name", ""), e["accounts"], False) for e in data.get("principals", [])]

    def revoke(self, principal_id: str) -> bool:
        """Remove a principal from the file; whether it was there."""
        with self._lock:
            data = json.loads(self.path.read_text() or "{}") if self.path.exists() else {}
            kept = [e for e in data.get("principals", []) if e["principal_id"] != principal_id]
            if len(kept) == len(data.get("principals", [])):
                return False
            self._write({**data, "principals": kept})
        return True

    def _write(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._mtime = None


def bearer_token(headers) -> str | None:  # noqa: ANN001 - aiohttp's CIMultiDictProxy
    """The token from `Authorization: Bearer …` or AdCP's `x-adcp-auth` header."""
    authorization = headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return headers.get("x-adcp-auth", "").strip() or None
