"""`creative-sync secrets init|rotate --dir DIR`: a deployment's shared secrets, as files that
docker compose and Kubernetes mount from one Secret into every gateway and worker.

- `sealing.key`: Fernet keys sealing sales agents' credentials on their topic (topics.credentials),
  one per line, the newest first: the newest seals, all of them open.
- `webhook-signing.pem`: Ed25519 keys (PKCS#8 PEM) signing our RFC 9421 webhooks, the newest
  first: the newest signs, all of them are published at /.well-known/jwks.json.

`init` creates what is missing and never overwrites; `rotate` puts a new key first and keeps the
old ones (drop an old one by editing the file once nothing needs it: see the README).
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from creative_sync.settings import SEALING_KEY, SIGNING_KEY
from topics.credentials import create_key_file, rotate_key_file


def _signing_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption())


def _write_private(path: Path, data: bytes, *, exclusive: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    with os.fdopen(os.open(path, flags, 0o600), "wb") as out:
        out.write(data)


def init(folder: Path) -> list[Path]:
    """The secrets that are missing from `folder`, created (mode 0600); the files created."""
    folder.mkdir(parents=True, exist_ok=True)
    created = []
    if create_key_file(folder / SEALING_KEY):
        created.append(folder / SEALING_KEY)
    signing = folder / SIGNING_KEY
    try:
        _write_private(signing, _signing_pem(), exclusive=True)
        created.append(signing)
    except FileExistsError:
        pass
    return created


def rotate(folder: Path, *, sealing: bool, signing: bool) -> list[Path]:
    """A new key first in each file asked for, the old ones kept; the files changed."""
    changed = []
    if sealing:
        rotate_key_file(folder / SEALING_KEY)
        changed.append(folder / SEALING_KEY)
    if signing:
        path = folder / SIGNING_KEY
        bundle = _signing_pem() + path.read_bytes()
        _write_private(Path(f"{path}.new"), bundle, exclusive=False)
        os.replace(f"{path}.new", path)
        changed.append(path)
    return changed
