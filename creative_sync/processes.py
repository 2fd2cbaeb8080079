"""Child processes of the system (worker, gateway), shared by `up`, `bench` and the tests.

Two ways to start one: `python -m creative_sync <role>` (the default: what a container does, and
what the benchmark measures), or forked from a preloaded server (`preload_children()`: the tests, `up`'s restarts).
Importing the adcp SDK costs ~18 CPU-s per process on these machines (it builds its pydantic type
graph at import; README, "Tests"): the test suite starts some forty workers, gateways
and agents, so it imports the SDK once, in the standard library's fork server, and forks each child
from there. A forked child is still a process of its own: its own memory, pid, log and SIGKILL."""
from __future__ import annotations

import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from creative_sync.settings import Settings

# What the fork server imports once: the SDK's client and server framework, faust, the processes' code.
PRELOADED = ("creative_sync.preloaded",)
_forkserver: Any = None  # the fork server's context once preload_children() is called


def preload_children(*also: str) -> None:
    """From now on, children are forked from a server that imported PRELOADED (and `also`) once.
    Call before the first child starts: the server's imports are fixed when it starts."""
    global _forkserver
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*PRELOADED, *also])
    _forkserver = context


def spawn(role: str, settings: Settings, *args: str, env_extra: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    """`python -m creative_sync <role> [args]` with `settings` (and `env_extra`) in its environment."""
    return spawn_module("creative_sync", [role, *args], {**settings.to_env(), **(env_extra or {})}, **popen)


def spawn_module(module: str, argv: list[str], env: dict[str, str], *, fork: bool = True, **popen) -> subprocess.Popen:
    """`python -m module argv...` with `env` added to this process's environment: executed, or
    forked from the preloaded server when there is one and `fork` (then `popen` may name stdout and
    stderr only: a file, DEVNULL or, for stderr, STDOUT)."""
    env = {**os.environ, **env}
    if _forkserver is None or not fork:
        return subprocess.Popen([sys.executable, "-m", module, *argv], env=env, stdin=subprocess.DEVNULL, **popen)
    return ForkedChild(_forkserver, module, argv, env, **popen)  # type: ignore[return-value]


def _target(stream: IO | int | None) -> str | int | None:
    """What the forked child opens for stdout/stderr: a path, or STDOUT; None inherits."""
    if stream is None or stream == subprocess.STDOUT:
        return stream
    if stream == subprocess.DEVNULL:
        return os.devnull
    assert hasattr(stream, "name"), f"a forked child writes to a file, not {stream!r}"
    return str(stream.name)


def _run_forked(module: str, argv: list[str], env: dict[str, str], stdout: str | None, stderr: str | int | None) -> None:
    """In the forked child: the environment, stdio and argv of `python -m module argv`, then the module."""
    import ctypes

    # SIGKILL when the fork server dies (it dies with the process that started it): no child outlives its run.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, stdout), (2, stderr)):
        if isinstance(path, str):
            opened = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(opened, fd)
            os.close(opened)
    if stderr == subprocess.STDOUT:
        os.dup2(1, 2)
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


class ForkedChild:
    """A child forked from the preloaded server, with the part of Popen's interface we use."""

    def __init__(self, context: Any, module: str, argv: list[str], env: dict[str, str], *,
                 stdout: IO | int | None = None, stderr: IO | int | None = None) -> None:
        self._process = context.Process(target=_run_forked, args=(module, argv, env, _target(stdout), _target(stderr)),
                                        name=f"{module} {' '.join(argv[:1])}", daemon=True)
        self._process.start()
        self.pid: int = self._process.pid
        self.args = [module, *argv]

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ChildProcess:
    """`python -m creative_sync <role>` as a child process with its log in a file."""

    role = ""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    def _spawn(self) -> None:
        self._log = open(self.log_path, "ab")
        self.started_at = time.monotonic()
        self.process = spawn(self.role, self.settings, stdout=self._log, stderr=subprocess.STDOUT)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, *, grace_s: float = 20.0) -> None:
        """SIGTERM, and SIGKILL if it is still running after `grace_s` (0: at once)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
            try:
                self.process.wait(grace_s or 5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if hasattr(self, "_log"):
            self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class WorkerProcess(ChildProcess):
    """The worker, killable with SIGKILL; ready once it owns partitions (wait_assigned)."""

    role = "worker"

    def start(self) -> "WorkerProcess":
        self._spawn()
        return self

    def metrics(self) -> str:
        url = f"http://{self.settings.worker_host}:{self.settings.worker_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()

    def routing(self) -> dict:
        """Which worker owns which partition of every topic, as this worker says (/owners/routing)."""
        import json

        from topics.credentials import OWNER_QUERIES, SecretBox

        token = SecretBox.from_file(self.settings.secrets_key_path).token(OWNER_QUERIES)
        request = urllib.request.Request(f"{self.settings.worker_url}/owners/routing", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())

    def owners_of(self, role: str) -> dict[int, str]:
        """partition of `role`'s topic → the URL of the worker that owns it."""
        from topics.catalogue import topic

        name = topic(role).full_name(self.settings.topic_prefix)
        return {int(p): url for p, url in self.routing()["topics"].get(name, {}).items()}

    def events_handled(self) -> float:
        """Events the worker's processors have handled so far (all processors)."""
        return sum(float(line.rsplit(" ", 1)[1]) for line in self.metrics().splitlines()
                   if line.startswith("creative_sync_worker_events_total{"))

    def wait_idle(self, quiet_s: float = 1.0, timeout_s: float = 60.0) -> None:
        """Until the worker has handled no event for `quiet_s` (what an earlier load left is done)."""
        deadline, last = time.monotonic() + timeout_s, -1.0
        while time.monotonic() < deadline:
            handled = self.events_handled()
            if handled == last:
                return
            last = handled
            time.sleep(quiet_s)

    def wait_assigned(self, timeout_s: float = 60.0) -> float:
        """Seconds from start until the worker owns partitions (it has joined its group)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process and self.process.poll() is None, f"worker exited: {self.log_tail()}"
            try:
                for line in self.metrics().splitlines():
                    if line.startswith("creative_sync_worker_assigned_partitions ") and float(line.split()[1]) > 0:
                        return time.monotonic() - self.started_at
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"worker did not join in {timeout_s}s: {self.log_tail()}")


class GatewayProcess(ChildProcess):
    """The gateway, ready once /healthz answers."""

    role = "gateway"

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.gateway_host}:{self.settings.gateway_port}"

    def start(self, timeout_s: float = 60.0) -> "GatewayProcess":
        self._spawn()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process and self.process.poll() is None, f"gateway exited: {self.log_tail()}"
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"gateway did not answer in {timeout_s}s")

    def wait_settled(self, timeout_s: float = 180.0) -> None:
        """Until the gateway is ready and has loaded what it loads after its start (the adcp SDK's
        A2A binding, ~15 CPU-s): what a measurement should not include."""
        import json

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as response:
                    state = json.loads(response.read())
                    if state["ready"] and state["a2a_binding_loaded"]:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"gateway did not settle in {timeout_s}s: {self.log_tail()}")
