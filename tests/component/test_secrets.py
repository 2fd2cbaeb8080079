"""A deployment's shared secrets (`creative-sync secrets init|rotate --dir`): created once with
private modes, never overwritten; a process whose configuration names a missing secret refuses to
start and says how to make it; rotation keeps what the old keys sealed or signed readable; two
gateway replicas on one secrets directory publish the same JWKS."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

from aiohttp.test_utils import TestClient, TestServer

from creative_sync import secrets
from creative_sync.broker import free_port
from creative_sync.settings import SEALING_KEY, SIGNING_KEY, Settings
from gateway.app import create_app
from gateway.webhooks import Rfc9421Signer
from topics.credentials import AgentSecrets, SecretBox


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "creative_sync", *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=120)


def test_init_creates_both_keys_private_and_never_overwrites_them(tmp_path):
    folder = tmp_path / "secrets"
    first = cli("secrets", "init", "--dir", str(folder))
    assert first.returncode == 0, first.stderr
    assert f"created {folder / SEALING_KEY}" in first.stdout and f"created {folder / SIGNING_KEY}" in first.stdout
    for name in (SEALING_KEY, SIGNING_KEY):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    before = {name: (folder / name).read_bytes() for name in (SEALING_KEY, SIGNING_KEY)}
    again = cli("secrets", "init", "--dir", str(folder))
    assert again.returncode == 0 and "created" not in again.stdout and "nothing new" in again.stdout
    assert {name: (folder / name).read_bytes() for name in (SEALING_KEY, SIGNING_KEY)} == before


def test_a_worker_or_gateway_refuses_to_start_without_the_secrets_it_is_told_to_use(tmp_path):
    empty = tmp_path / "not-initialised"
    env = {"CREATIVE_SYNC_SECRETS_DIR": str(empty), "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
           "CREATIVE_SYNC_DATA_DIR": str(tmp_path / "data")}
    for role in ("worker", "gateway"):
        refused = cli(role, env=env)
        assert refused.returncode == 2, (role, refused.stdout, refused.stderr)
        assert f"{empty / SEALING_KEY} is missing" in refused.stderr
        assert f"creative-sync secrets init --dir {empty}" in refused.stderr
    assert not empty.exists()  # nothing made up in its place
    named = cli("gateway", env={**env, "CREATIVE_SYNC_SECRETS_DIR": "", "CREATIVE_SYNC_WEBHOOK_SIGNING_KEY_FILE":
                                str(tmp_path / "absent.pem")})
    assert named.returncode == 2 and "absent.pem is missing" in named.stderr


def test_rotation_keeps_what_the_old_keys_sealed_and_signed_readable(tmp_path):
    secrets.init(tmp_path)
    old_box = SecretBox.from_file(tmp_path / SEALING_KEY, create=False)
    sealed = old_box.seal(AgentSecrets(auth_token="agent-token-1"))
    old_signer = Rfc9421Signer.from_bundle((tmp_path / SIGNING_KEY).read_bytes())

    secrets.rotate(tmp_path, sealing=True, signing=True)
    box = SecretBox.from_file(tmp_path / SEALING_KEY, create=False)
    assert box.open(sealed).auth_token == "agent-token-1"  # sealed with the old key, opened after the rotation
    resealed = box.seal(AgentSecrets(auth_token="agent-token-2"))
    assert old_box.open(resealed) is None  # sealed with the new key
    assert box.token("owner-queries") == old_box.token("owner-queries")  # processes restart one by one

    signer = Rfc9421Signer.from_bundle((tmp_path / SIGNING_KEY).read_bytes())
    assert signer.key_id != old_signer.key_id
    assert [k["kid"] for k in signer.public_jwks] == [signer.key_id, old_signer.key_id]  # the old one still published
    assert signer.public_jwks[1] == old_signer.public_jwk


async def test_two_gateways_on_one_secrets_directory_publish_the_same_keys(tmp_path):
    secrets.init(tmp_path / "secrets")
    jwks = []
    for replica in ("a", "b"):  # each replica with a data dir of its own, as in a cluster
        settings = Settings(bootstrap_servers=f"127.0.0.1:{free_port()}", principals_file=tmp_path / "p.json",
                            data_dir=tmp_path / replica, secrets_dir=tmp_path / "secrets", log_format="text")
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        jwks.append(await (await client.get("/.well-known/jwks.json")).json())
        await client.close()
    assert jwks[0] == jwks[1] and len(jwks[0]["keys"]) == 1 and "d" not in jwks[0]["keys"][0]
    assert not (tmp_path / "a" / "secrets.key").exists()  # the shared key, not one of its own
