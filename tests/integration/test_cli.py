"""The command line against real processes: the embedded broker leaves no orphan, topics are
created idempotently with the catalogue's partition counts."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from creative_sync.broker import free_ports
from topics.admin import broker_answers
from topics.catalogue import all_specs


def cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "creative_sync", *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=120, **kwargs)


def tansu_pids_on(port: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "tansu" in cmdline and f":{port}" in cmdline:
                pids.append(int(entry.name))
    return pids


def start_broker_command() -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    process = subprocess.Popen([sys.executable, "-m", "creative_sync", "broker"], env=env,
                               stdout=subprocess.PIPE, text=True)
    bootstrap = process.stdout.readline().strip()
    return process, bootstrap


def wait_gone(port: int, timeout_s: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while tansu_pids_on(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    return tansu_pids_on(port)


def test_broker_command_prints_a_working_address_and_stops_cleanly_on_sigterm():
    process, bootstrap = start_broker_command()
    port = int(bootstrap.rsplit(":", 1)[1])
    assert asyncio.run(broker_answers(bootstrap)), "it answers a metadata request"
    assert tansu_pids_on(port)
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert wait_gone(port) == [], "no orphan broker"


def test_broker_dies_with_a_killed_launcher():
    process, bootstrap = start_broker_command()
    port = int(bootstrap.rsplit(":", 1)[1])
    process.send_signal(signal.SIGKILL)
    process.wait(5)
    assert wait_gone(port) == [], "no orphan broker even after kill -9 of the launcher"


def test_topics_create_is_idempotent_and_list_shows_the_catalogue(kafka_bootstrap, namespace):
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "CREATIVE_SYNC_TOPIC_PREFIX": f"cli{namespace}.",
           "CREATIVE_SYNC_APP_ID": f"app{namespace}"}
    first = cli("topics", "create", env=env)
    assert first.returncode == 0, first.stderr
    specs = all_specs(f"app{namespace}")
    assert first.stdout.count("created") == len(specs)
    second = cli("topics", "create", env=env)
    assert second.returncode == 0 and second.stdout.count("exists") == len(specs) and "created" not in second.stdout
    listing = cli("topics", "list", env=env)
    for spec in specs:
        assert spec.full_name(f"cli{namespace}.") in listing.stdout
    assert f"app{namespace}-creatives-changelog" in listing.stdout, "the name faust gives the table's changelog"




def test_the_simulated_agents_token_of_make_up_is_not_on_a_command_line(settings, tmp_path):
    """`make up` starts the simulated agents with their token in the environment: `ps` shows every
    user the command lines, never the token; the agents accept it and nothing else."""
    import secrets
    import urllib.error
    import urllib.request

    from creative_sync.up import spawn_sim_agents

    token, port = secrets.token_urlsafe(24), free_ports(4)  # the simulated agents listen on 4 ports in a row
    errors = (tmp_path / "sim-agents.err").open("w")
    # executed as `up` executes it (not forked from the tests' preloaded server): its command line is the point
    process = spawn_sim_agents(settings, port, token, stdout=subprocess.DEVNULL, stderr=errors, fork=False)
    try:
        def capabilities(bearer: str) -> int:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/get_adcp_capabilities", data=b"{}",
                                             headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "sim-agents.err").read_text()[-2000:]
            try:
                status = capabilities(token)
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200 and capabilities("not-the-token") == 401
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().decode()
        assert "sim-agents" in cmdline and token not in cmdline
    finally:
        process.kill()
        process.wait(10)
        errors.close()


def test_up_refuses_to_start_beside_another_up_and_names_the_port(tmp_path):
    """A second `up` on the same machine used to start a broker and children that died on start one
    by one, while its demo was refused (401) by the first one's gateway: it now says which port is
    held, and which setting moves it, before starting anything."""
    import socket

    held = socket.socket()
    held.bind(("127.0.0.1", free_ports(1)))
    held.listen()
    gateway_port = held.getsockname()[1]
    env = {"CREATIVE_SYNC_GATEWAY_PORT": str(gateway_port), "CREATIVE_SYNC_WORKER_PORT": str(free_ports(1)),
           "CREATIVE_SYNC_SIM_PORT": str(free_ports(4)), "CREATIVE_SYNC_DATA_DIR": str(tmp_path)}
    try:
        result = cli("up", env=env)
    finally:
        held.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"gateway port 127.0.0.1:{gateway_port} is in use (set CREATIVE_SYNC_GATEWAY_PORT)" in result.stdout
    assert "broker" not in result.stdout and "started" not in result.stdout.replace("not started", "")
