"""Reads routed to their owners (streams/owner_client.py): an account's library lives in the tables
of the worker that owns the account's partition (a creative's sync status, of the worker that owns
the creative's), and the gateway asks that worker instead of keeping a copy of every library. Here:
how the gateway tells its callers that the owners could not answer.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.errors import AdcpRequestError
from streams.owner_client import Owners
from topics.catalogue import Codecs


class OwnersUnavailable(AdcpRequestError):
    def __init__(self, detail: str) -> None:
        super().__init__(503, "SERVICE_UNAVAILABLE", f"The library is not readable right now: {detail}.",
                         recovery="transient", retry_after=2, suggestion="Retry in a few seconds.")


def gateway_owners(seeds: Iterable[str], token: str, codecs: Codecs, *, deadline_s: float, metrics: Any = None) -> Owners:
    """The owners' client of a gateway: its failures are AdCP errors (transient)."""
    return Owners(seeds, token, codecs, deadline_s=deadline_s, metrics=metrics, unavailable=OwnersUnavailable,
                  failed=lambda status: AdcpRequestError(500, "INTERNAL_ERROR", f"The library owner answered {status}.",
                                                         recovery="transient"))
