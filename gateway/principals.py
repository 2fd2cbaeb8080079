"""Principals in the cluster: the compacted topic `creative-sync.auth.principals` holds, per
principal, the SHA-256 of its bearer token, its accounts and its revocation. Every gateway reads it
into a view (a handful of records: one per API client, not per creative) and sees a change within
its idle fetch wait (2 s); `creative-sync principals add|list|revoke` writes and reads it against
KAFKA_BOOTSTRAP_SERVERS. The token exists in clear once, in what `add` prints.

A principals file (gateway.auth.PrincipalStore) may stand beside it: the tests' and a broker-less
setup's; a gateway accepts a token either knows.
"""
from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gateway.auth import Principal, token_hash
from topics.admin import ensure_topics
from topics.catalogue import Codecs, topic
from topics.events import PrincipalRecord
from topics.views import CompactedView


class TopicPrincipals(CompactedView):
    """The principals topic as a gateway sees it: tokens' hashes to principals, revoked ones left out."""

    def __init__(self, bootstrap_servers: str, codecs: Codecs, topic_prefix: str) -> None:
        super().__init__(bootstrap_servers, topic("principals").full_name(topic_prefix), codecs.value("principals"),
                         lambda record: record.principal_id)
        self._by_hash: dict[str, Principal] = {}

    def apply(self, value: PrincipalRecord) -> None:
        before = self.items.get(value.principal_id)
        if before is not None:
            self._by_hash.pop(before.token_sha256, None)
        super().apply(value)
        if not value.revoked:
            self._by_hash[value.token_sha256] = Principal(value.principal_id, value.name, frozenset(value.accounts))

    def authenticate(self, token: str | None) -> Principal | None:
        # A lookup by the token's hash: what leaks through timing is about the hash, not the token.
        return self._by_hash.get(token_hash(token)) if token else None


class Principals:
    """Whom a gateway accepts: the principals topic, and a principals file when one is configured."""

    def __init__(self, *stores: Any) -> None:
        self.stores = [s for s in stores if s is not None]

    def authenticate(self, token: str | None) -> Principal | None:
        return next((p for s in self.stores if (p := s.authenticate(token)) is not None), None)


# -- the command line's side: write and read the topic ----------------------------------------------
async def _publish(bootstrap: str, prefix: str, record: PrincipalRecord) -> None:
    spec = topic("principals")
    await ensure_topics(bootstrap, [spec], prefix)
    codecs = Codecs(prefix=prefix)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(spec.full_name(prefix), key=codecs.key("principals").encode(record.principal_id),
                                     value=codecs.value("principals").encode(record))
    finally:
        await producer.stop()


async def read(bootstrap: str, prefix: str) -> dict[str, PrincipalRecord]:
    """Every principal on the topic now (the latest record of each)."""
    name, codec = topic("principals").full_name(prefix), Codecs(prefix=prefix).value("principals")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    found: dict[str, PrincipalRecord] = {}
    try:
        if not consumer.partitions_for_topic(name):
            return found
        partition = TopicPartition(name, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        while await consumer.position(partition) < end:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                for record in batch:
                    if record.value is not None:
                        value = codec.decode(record.value)
                        found[value.principal_id] = value
        return found
    finally:
        await consumer.stop()


def add(bootstrap: str, prefix: str, name: str, accounts: list[str]) -> tuple[PrincipalRecord, str]:
    """A new principal on the topic; it and its token (the only time the token exists in clear)."""
    token = secrets.token_urlsafe(32)
    record = PrincipalRecord(principal_id=f"p_{secrets.token_hex(6)}", name=name, accounts=sorted(set(accounts)),
                             token_sha256=token_hash(token), created_at=datetime.now(UTC))
    asyncio.run(_publish(bootstrap, prefix, record))
    return record, token


def revoke(bootstrap: str, prefix: str, principal_id: str) -> PrincipalRecord | None:
    """The principal, revoked (None: there is none with that id)."""
    async def run() -> PrincipalRecord | None:
        current = (await read(bootstrap, prefix)).get(principal_id)
        if current is None:
            return None
        revoked = current.model_copy(update={"revoked": True, "revoked_at": datetime.now(UTC)})
        await _publish(bootstrap, prefix, revoked)
        return revoked
    return asyncio.run(run())


def listed(bootstrap: str, prefix: str) -> list[PrincipalRecord]:
    return sorted(asyncio.run(read(bootstrap, prefix)).values(), key=lambda r: r.created_at)
