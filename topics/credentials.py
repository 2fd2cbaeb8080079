"""Sales agents' secrets (auth token, webhook secret) at rest: encrypted with the deployment's
secrets key (Fernet, from `cryptography`) before they go onto the credentials topic, so that no
event, log or topic dump holds them in plain text. Gateway and workers share the key file.
"""
from __future__ import annotations

import json
import os
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


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


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key

    def token(self, purpose: str) -> str:
        """A bearer token for calls between our own processes (e.g. the gateway asking a worker):
        derived from the shared key, so only holders of the key can make or check it."""
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).hexdigest()

    @classmethod
    def from_file(cls, path: Path) -> "SecretBox":
        """The key in `path`, created (mode 0600) when missing: the first process makes it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls(path.read_bytes().strip())
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

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
