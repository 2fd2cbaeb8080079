"""Sales agents' secrets (auth token, webhook secret) at rest: encrypted with the deployment's
secrets key (Fernet, from `cryptography`) before they go onto the credentials topic, so that no
event, log or topic dump holds them in plain text. Gateway and workers share the key file.

The file holds one key per line, the newest first: the newest seals, every one opens (MultiFernet),
so a key is rotated by adding a new first line (`creative-sync secrets rotate`) and the old ones
still decrypt what they sealed; a line is dropped once nothing sealed with it is left.
"""
from __future__ import annotations

import json
import os
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


@dataclass(frozen=True)
class AgentSecrets:
    auth_token: str | None = None
    webhook_secret: str | None = None
    #: extra static headers every call to the agent carries (a tenant header, an API key): sealed
    #: like the token, since some carry credentials
    headers: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:  # never print a secret, even by accident
        return (f"AgentSecrets(auth_token={'***' if self.auth_token else None}, "
                f"webhook_secret={'***' if self.webhook_secret else None}, headers={[name for name, _ in self.headers]})")


#: What the gateway's bearer token for the workers' owner queries is derived for (SecretBox.token).
OWNER_QUERIES = "owner-queries"


class MissingSecret(RuntimeError):
    """A key the configuration names is not there: the process must not start without it."""


class SecretBox:
    def __init__(self, keys: bytes | list[bytes]) -> None:
        keys = [keys] if isinstance(keys, bytes) else keys
        assert keys, "a secrets key is needed"
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        # The tokens between our processes come from the oldest key: a rotation (a new first line)
        # leaves them as they are while processes restart one by one with the new file.
        self._key = keys[-1]

    def token(self, purpose: str) -> str:
        """A bearer token for calls between our own processes (e.g. the gateway asking a worker):
        derived from the shared key, so only holders of the key can make or check it."""
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).hexdigest()

    @classmethod
    def from_file(cls, path: Path, *, create: bool = True) -> "SecretBox":
        """The keys in `path`; created (mode 0600) when missing and `create` (the first process of a
        development setup makes it), else MissingSecret."""
        if create:
            create_key_file(path)
        try:
            lines = path.read_bytes().split()
        except FileNotFoundError:
            raise MissingSecret(f"the secrets key {path} is missing: create it with "
                                f"`creative-sync secrets init --dir {path.parent}`") from None
        return cls([line for line in lines if line])

    def seal(self, secrets: AgentSecrets) -> bytes:
        return self._fernet.encrypt(json.dumps({"auth_token": secrets.auth_token, "webhook_secret": secrets.webhook_secret,
                                                "headers": [list(h) for h in secrets.headers]}).encode())

    def open(self, ciphertext: bytes) -> AgentSecrets | None:
        """The secrets, or None when they were sealed with another key."""
        try:
            data = json.loads(self._fernet.decrypt(ciphertext))
        except (InvalidToken, ValueError):
            return None
        return AgentSecrets(data.get("auth_token"), data.get("webhook_secret"),
                            tuple((str(name), str(value)) for name, value in data.get("headers") or []))


def create_key_file(path: Path) -> bool:
    """A new Fernet key in `path` (mode 0600) unless the file exists; whether it was created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(Fernet.generate_key() + b"\n")
    return True


def rotate_key_file(path: Path) -> None:
    """A new key first in `path`; the old ones stay, to open what they sealed."""
    old = path.read_bytes()
    fd = os.open(f"{path}.new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(Fernet.generate_key() + b"\n" + old)
    os.replace(f"{path}.new", path)
