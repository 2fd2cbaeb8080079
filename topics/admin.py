"""Creates and describes the catalogue's topics on any Kafka-protocol cluster (idempotent)."""
from __future__ import annotations

from dataclasses import dataclass

import asyncio

from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from topics.catalogue import TopicSpec

TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicState:
    name: str
    wanted_partitions: int
    actual_partitions: int | None  # None: missing
    created: bool

    @property
    def ok(self) -> bool:
        return self.actual_partitions == self.wanted_partitions


async def ensure_topics(bootstrap: str, specs: list[TopicSpec], prefix: str = "", replication: int = 1) -> list[TopicState]:
    """Create every missing topic; report each with its partitions. Existing topics are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.full_name(prefix) not in existing]
        created: set[str] = set()
        if missing:
            response = await admin.create_topics(
                [NewTopic(s.full_name(prefix), s.partitions, replication, topic_configs=s.config()) for s in missing]
            )
            for name, code, message in response.topic_errors:
                if code == 0:
                    created.add(name)
                elif code != TOPIC_ALREADY_EXISTS:  # created concurrently by someone else: fine
                    raise RuntimeError(f"cannot create topic {name}: error {code} {message}")
        partitions = await _partition_counts(admin, [s.full_name(prefix) for s in specs])
        return [
            TopicState(s.full_name(prefix), s.partitions, partitions.get(s.full_name(prefix)), s.full_name(prefix) in created)
            for s in specs
        ]
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for description in await admin.describe_topics(names):
        if description.get("error_code", 0) == 0:
            counts[description["topic"]] = len(description["partitions"])
    return counts


async def broker_answers(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when the cluster answers a Kafka metadata request within `timeout_s`."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return True
    except Exception:  # any failure means "not answering"
        return False
    finally:
        await client.close()
