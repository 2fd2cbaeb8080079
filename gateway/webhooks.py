"""Task webhooks: when a submitted task completes, POST the AdCP MCP webhook payload to the buyer's
`push_notification_config.url`, signed, retried with exponential backoff and jitter.

Signing follows the registration: with `authentication` (deprecated), HMAC-SHA256 or Bearer; without
it, the RFC 9421 webhook profile, signed by the adcp library. The legacy HMAC scheme is three lines
(`X-AdCP-Signature: sha256=hex(HMAC(secret, "{ts}.{body}"))`) and is written here because importing
`adcp.signing` builds the SDK's whole pydantic type graph (~8 s of CPU); the 9421 signer is loaded
once, in a thread, the first time it is needed.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.sync.outbound import Policy, address_problem, url_problem

log = logging.getLogger(__name__)
RETRIABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


def hmac_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The AdCP legacy HMAC-SHA256 webhook signature headers (verifiable by adcp's verify_webhook_hmac)."""
    ts = str(int(timestamp if timestamp is not None else time.time()))
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-AdCP-Signature": f"sha256={digest}", "X-AdCP-Timestamp": ts}


def task_payload(*, task_id: str, task_type: str, status: str, result: dict[str, Any] | None,
                 operation_id: str | None, token: str | None, now: datetime) -> dict[str, Any]:
    payload = {
        # One logical delivery: the same key on every retry, so the receiver dedupes.
        "idempotency_key": f"whk_{uuid.uuid5(uuid.NAMESPACE_URL, f'{task_id}/{status}').hex}",
        "operation_id": operation_id or task_id,
        "task_id": task_id,
        "task_type": task_type,
        "protocol": "creative",
        "status": status,
        "timestamp": now.isoformat().replace("+00:00", "Z"),
    }
    if result is not None:
        payload["result"] = result
    if token:
        payload["token"] = token
    return payload


class Rfc9421Signer:
    """Signs with an Ed25519 key (generated at start unless a PEM is given) via adcp's signer; the
    public key is served as a JWKS (`/.well-known/jwks.json`) for receivers to verify with. A PEM
    bundle (`from_bundle`: the newest key first, as `creative-sync secrets rotate --signing` writes
    it) signs with its first key and publishes them all, so that a receiver still verifies what the
    previous key signed while the rotation rolls out. Key ids are the keys' thumbprints."""

    def __init__(self, private_key_pem: bytes | None = None, key_id: str | None = None,
                 older_pems: tuple[bytes, ...] = ()) -> None:
        key = (serialization.load_pem_private_key(private_key_pem, password=None) if private_key_pem
               else Ed25519PrivateKey.generate())
        self.key_id = key_id or _thumbprint(key)
        self._pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        self.public_jwk = _public_jwk(key, self.key_id)
        older = [serialization.load_pem_private_key(pem, password=None) for pem in older_pems]
        self.public_jwks = [self.public_jwk, *(_public_jwk(k, _thumbprint(k)) for k in older)]
        self._sign = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_bundle(cls, bundle: bytes) -> "Rfc9421Signer":
        end = b"-----END PRIVATE KEY-----"
        pems = [block.strip() + b"\n" + end + b"\n" for block in bundle.split(end) if block.strip()]
        assert pems, "no private key in the signing key file"
        return cls(pems[0], older_pems=tuple(pems[1:]))

    async def headers(self, url: str, body: bytes) -> dict[str, str]:
        async with self._lock:
            if self._sign is None:
                self._sign = await asyncio.to_thread(self._load)
        return self._sign(url, body)

    def _load(self):  # noqa: ANN202 - runs in a thread: importing adcp.signing is the slow part
        from adcp.signing import load_private_key_pem
        from adcp.signing.webhook_signer import sign_webhook

        private_key = load_private_key_pem(self._pem)

        def sign(url: str, body: bytes) -> dict[str, str]:
            signed = sign_webhook(method="POST", url=url, headers={"Content-Type": "application/json"}, body=body,
                                  private_key=private_key, key_id=self.key_id, alg="ed25519")
            return signed.as_dict()

        return sign


def _raw_public(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _thumbprint(key: Any) -> str:
    return "creative-sync-" + hashlib.sha256(_raw_public(key)).hexdigest()[:16]


def _public_jwk(key: Any, key_id: str) -> dict[str, Any]:
    return {"kty": "OKP", "crv": "Ed25519", "kid": key_id, "alg": "EdDSA", "use": "sig", "adcp_use": "webhook-signing",
            "key_ops": ["verify"], "x": base64.urlsafe_b64encode(_raw_public(key)).rstrip(b"=").decode()}


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing names that resolve to an address the outbound policy forbids
    (streams.sync.outbound): aiohttp then connects to the addresses checked here."""

    def __init__(self, policy: Policy) -> None:
        self.policy, self._inner = policy, DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            problem = address_problem(result["host"], self.policy)
            if problem:
                raise OSError(f"refused: {host} is not an allowed target: {problem}")
        return results

    async def close(self) -> None:
        await self._inner.close()


class TaskWebhooks:
    def __init__(self, signer: Rfc9421Signer, *, policy: Policy = Policy(), attempts: int = 6, first_delay_s: float = 0.5,
                 max_delay_s: float = 30.0, timeout_s: float = 10.0) -> None:
        self.signer, self.attempts, self.policy = signer, attempts, policy
        self.first_delay_s, self.max_delay_s, self.timeout_s = first_delay_s, max_delay_s, timeout_s
        self._tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None

    @property
    def retry_horizon_s(self) -> float:
        """How long after the first attempt the last one may come (what receivers keep evidence for)."""
        delays = [min(self.max_delay_s, self.first_delay_s * 2 ** i) for i in range(self.attempts - 1)]
        return sum(delays) + self.attempts * self.timeout_s

    def schedule(self, coro) -> None:  # noqa: ANN001
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def deliver(self, config: dict[str, Any], *, task_id: str, task_type: str, status: str,
                      result: dict[str, Any] | None) -> bool:
        """POST the webhook until a 2xx, a non-retriable answer, or the attempts run out."""
        url = str(config["url"])
        problem = url_problem(url, self.policy)  # (aiohttp resolves no address literal: checked here)
        if problem:
            log.warning("webhook for %s not sent: its URL is not an allowed target (%s)", task_id, problem)
            return False
        payload = task_payload(task_id=task_id, task_type=task_type, status=status, result=result,
                               operation_id=config.get("operation_id"), token=config.get("token"), now=datetime.now(UTC))
        body = json.dumps(payload, separators=(",", ":")).encode()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s), trust_env=False,
                connector=aiohttp.TCPConnector(resolver=GuardedResolver(self.policy)))
        delay = self.first_delay_s
        for attempt in range(1, self.attempts + 1):
            headers = {"Content-Type": "application/json", **await self._auth_headers(config, url, body)}
            try:
                # No redirects: a redirect could point anywhere, past the checks above.
                async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                    if 200 <= response.status < 300:
                        return True
                    if response.status not in RETRIABLE:
                        log.warning("webhook for %s refused with %s; not retried", task_id, response.status)
                        return False
                    retry_after = response.headers.get("Retry-After")
                    if retry_after and retry_after.isdigit():
                        delay = max(delay, float(retry_after))
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                log.info("webhook for %s failed (attempt %d): %s", task_id, attempt, exc)
            if attempt < self.attempts:
                await asyncio.sleep(min(self.max_delay_s, delay) * random.uniform(0.5, 1.0))
                delay *= 2
        log.warning("webhook for %s not delivered after %d attempts", task_id, self.attempts)
        return False

    async def _auth_headers(self, config: dict[str, Any], url: str, body: bytes) -> dict[str, str]:
        authentication = config.get("authentication")
        if authentication:  # the registration chose the legacy scheme: a switch, never a fallback
            scheme = (authentication.get("schemes") or ["HMAC-SHA256"])[0]
            credentials = str(authentication.get("credentials", ""))
            if scheme == "Bearer":
                return {"Authorization": f"Bearer {credentials}"}
            return hmac_headers(credentials, body)
        return await self.signer.headers(url, body)
