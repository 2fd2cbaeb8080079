"""Principals in the cluster (issue 19): `creative-sync principals add|list|revoke` against the
broker's principals topic; a gateway that was never told about the principal accepts its token
within seconds, for its own account only; a revocation is seen as quickly; no token is ever on the
topic or in the listing."""
from __future__ import annotations

import os
import subprocess
import sys

from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from tests.integration.sales_agents import eventually
from tests.support import read_all, topic_name


def cli(settings, *args: str) -> str:  # noqa: ANN001
    done = subprocess.run([sys.executable, "-m", "creative_sync", "principals", *args],
                          env={**os.environ, **settings.to_env()}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def added(printed: str) -> tuple[str, str]:
    principal_id = printed.split()[1]
    return principal_id, next(line.split(": ", 1)[1] for line in printed.splitlines() if line.startswith("token: "))


async def test_a_principal_added_on_the_cluster_works_on_a_gateway_for_its_account_only_until_revoked(
        topics_created, ready_worker, tmp_path):
    settings = topics_created.with_(principals_file=tmp_path / "no-such-file.json")  # the topic alone
    gateway = TestClient(TestServer(create_app(settings)))
    await gateway.start_server()
    try:
        async def status(token: str, account: str) -> int:
            response = await gateway.post("/api/v1/list_creatives", json={"account": {"account_id": account}},
                                          headers={"Authorization": f"Bearer {token}"})
            return response.status

        first_id, first = added(cli(settings, "add", "--name", "buyer-one", "--account", "acct-one"))
        second_id, second = added(cli(settings, "add", "--name", "buyer-two", "--account", "acct-two"))
        assert "the topic" in cli(settings, "list")
        await eventually(lambda: _is(status(first, "acct-one"), 200), timeout=30, what="the new principal accepted")
        assert await status(second, "acct-two") == 200
        assert await status(second, "acct-one") == 403  # another account's library: refused
        assert await status(first, "acct-two") == 403
        assert await status("a-guessed-token", "acct-one") == 401

        listing = cli(settings, "list")
        assert first_id in listing and second_id in listing and "buyer-one" in listing
        records = await read_all(settings.bootstrap_servers, topic_name(settings, "principals"))
        assert len(records) == 2 and not any(t.encode() in r.value for r in records for t in (first, second))
        assert first not in listing and second not in listing

        assert f"revoked {first_id}" in cli(settings, "revoke", "--id", first_id)
        await eventually(lambda: _is(status(first, "acct-one"), 401), timeout=30, what="the revoked token refused")
        assert await status(second, "acct-two") == 200  # the other principal unaffected
        assert f"{first_id}\tbuyer-one\tacct-one\trevoked" in cli(settings, "list")
    finally:
        await gateway.close()


async def _is(pending, expected: int) -> bool:  # noqa: ANN001
    return await pending == expected
