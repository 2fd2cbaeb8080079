"""Where creative-sync may send requests: sales agents, buyers' task webhooks, any notification
webhook. Only http(s), and only to public addresses: a host that resolves to a loopback, private,
link-local, multicast, reserved or unspecified address is refused, when the URL is registered
and again when a connection is made (the name is resolved once, checked, and the connection goes
to the checked address, so a DNS answer that changes in between cannot redirect it).

For local development (simulated agents on loopback) `allow_private` lets loopback and private
(RFC 1918, ULA) addresses through; link-local (cloud metadata), multicast and reserved ones stay
refused even then. `make up` and the tests turn it on; it is off by default.

Connection time is enforced below every HTTP client of the process: `install()` swaps httpcore's
network backend (what httpx, and so the adcp SDK's MCP and A2A clients, connect through) for one
that checks each address; the gateway's aiohttp client uses `resolve_checked` as its resolver.
Written here because no well-kept library does this for httpx (`advocate` wraps `requests` only).
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

RESOLVE_TIMEOUT_S = 5.0


class OutboundRefused(Exception):
    """A URL or address creative-sync will not send a request to (the message says why, and never
    carries anything the target said)."""


@dataclass(frozen=True)
class Policy:
    allow_private: bool = False  # the development allowance: loopback and private networks


def address_problem(address: str, policy: Policy) -> str | None:
    """Why a request may not go to `address` (None: it may)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # (an IPv6 zone id is not part of the address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:  # (checked first: ::1 is also in a reserved block)
        return None if policy.allow_private else f"{ip} is a loopback or private address"
    if ip.is_unspecified or ip.is_multicast or ip.is_link_local or ip.is_reserved:
        return f"{ip} is a link-local, multicast, reserved or unspecified address"
    if ip.is_private or not ip.is_global:
        return None if policy.allow_private and ip.is_private else f"{ip} is a loopback or private address"
    return None


def url_problem(url: Any, policy: Policy) -> str | None:
    """Why `url` cannot be a target, from its text alone (scheme, host, literal addresses)."""
    if not isinstance(url, str):
        return "it must be a string"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"it is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs are allowed"
    if not parts.hostname:
        return "it has no host"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not allowed (use auth)"
    if port == 0:
        return "port 0 is not a port"
    try:
        return address_problem(parts.hostname, policy)
    except ValueError:
        return None  # a name: checked when it is resolved


async def resolve_checked(host: str, port: int, policy: Policy) -> list[str]:
    """The addresses of `host` a request may go to: every one must be allowed (a name with one bad
    address is refused as a whole: which one a client would pick is not ours to guess)."""
    try:
        problem = address_problem(host, policy)
    except ValueError:
        pass  # not an address literal: resolve it
    else:
        if problem:
            raise OutboundRefused(f"{host} is not an allowed target: {problem}")
        return [host]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError) as exc:
        raise OutboundRefused(f"{host} does not resolve ({type(exc).__name__})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        problem = address_problem(address, policy)
        if problem:
            raise OutboundRefused(f"{host} is not an allowed target: {problem}")
    if not addresses:
        raise OutboundRefused(f"{host} has no address")
    return addresses


async def check_target(url: str, policy: Policy) -> None:
    """Registration-time check of a URL (raises OutboundRefused). A name that does not resolve now
    is let through: it is checked again, like every name, when a connection is made."""
    problem = url_problem(url, policy)
    if problem:
        raise OutboundRefused(problem)
    parts = urlsplit(url)
    try:
        await resolve_checked(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), policy)
    except OutboundRefused as refused:
        if "does not resolve" not in str(refused):
            raise


# -- connection time, under httpx --------------------------------------------------------------
_policy: Policy | None = None  # None: not installed (the process makes no outbound calls to check)


async def refusal(url: str) -> str | None:
    """Why the installed policy refuses `url` now (None: it does not, or none is installed): a
    clear reason before a client even tries (the connections are checked again underneath)."""
    if _policy is None:
        return None
    try:
        await check_target(url, _policy)
    except OutboundRefused as refused:
        return str(refused)
    return None


def install(policy: Policy) -> None:
    """Check every TCP connection httpx makes in this process against `policy` from now on (both
    httpcore and httpcore2: the MCP client of the SDK runs on the httpx2 fork, its A2A client on
    httpx)."""
    global _policy
    _policy = policy
    import importlib

    for package in ("httpcore", "httpcore2"):
        try:
            modules = [importlib.import_module(f"{package}._async.{name}") for name in ("connection_pool", "connection")]
        except ImportError:
            continue
        if not getattr(modules[0].AutoBackend, "guarded", False):
            guarded = _guarded(importlib.import_module(package), modules[0].AutoBackend)
            for module in modules:
                module.AutoBackend = guarded


def _guarded(httpcore: Any, auto_backend: type) -> type:
    """`httpcore`'s AutoBackend, but every address is checked and the connection goes to the
    checked address (TLS still verifies and sends the name: httpcore passes it to start_tls
    separately)."""

    class GuardedBackend:
        guarded = True

        def __init__(self) -> None:
            self._backend = auto_backend()

        async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                              socket_options: Any = None) -> Any:
            if _policy is None:
                return await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
            try:
                addresses = await resolve_checked(host, port, _policy)
            except OutboundRefused as refused:
                raise httpcore.ConnectError(f"refused: {refused}") from None
            failure: Exception | None = None
            for address in addresses:
                try:
                    return await self._backend.connect_tcp(address, port, timeout, local_address, socket_options)
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    failure = exc
            assert failure is not None
            raise failure

        async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
            if _policy is not None:
                raise httpcore.ConnectError("refused: unix sockets are not an allowed target")
            return await self._backend.connect_unix_socket(path, timeout, socket_options)

        async def sleep(self, seconds: float) -> None:
            await self._backend.sleep(seconds)

    return GuardedBackend
