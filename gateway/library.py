"""Creative-library requests in, library commands out.

Writes: library commands (keyed by account). The library processor answers on task results.
"""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway import keys
from gateway.errors import invalid
from gateway.middleware import PRINCIPAL
from topics.catalogue import topic
from topics.events import LibraryCommand, LibraryOperation

routes = web.RouteTableDef()
MAX_CREATIVES = 100


class AccountRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: str = Field(min_length=1, max_length=255)


class CreativeIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # AdCP creatives carry many optional fields
    creative_id: str = Field(min_length=1, max_length=255)
    name: str
    assets: dict[str, Any]


class SyncCreativesIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    account: AccountRef
    idempotency_key: str = Field(min_length=16, max_length=255)
    creatives: list[CreativeIn] = Field(min_length=1, max_length=MAX_CREATIVES)

    @field_validator("creatives")
    @classmethod
    def unique_ids(cls, creatives: list[CreativeIn]) -> list[CreativeIn]:
        seen: set[str] = set()
        for creative in creatives:
            if creative.creative_id in seen:
                raise ValueError(f"duplicate creative_id {creative.creative_id!r}")
            seen.add(creative.creative_id)
        return creatives


def command_id_for(account_id: str, idempotency_key: str) -> str:
    """Deterministic: a retried request becomes the same command, which the library applies once."""
    return "task_" + hashlib.sha256(f"{account_id}\x00{idempotency_key}".encode()).hexdigest()[:32]


def parse(model: type[BaseModel], raw: Any) -> BaseModel:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise invalid(f"{field or 'request'}: {first['msg']}", field=field) from None


async def read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise invalid("The body is not valid JSON.") from None


@routes.post("/api/v1/sync_creatives")
async def sync_creatives(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid("The body must be a JSON object.")
    sync = parse(SyncCreativesIn, body)
    principal = request[PRINCIPAL]
    principal.require_account(sync.account.account_id)
    command = LibraryCommand(
        command_id=command_id_for(sync.account.account_id, sync.idempotency_key),
        account_id=sync.account.account_id,
        principal_id=principal.principal_id,
        operation=LibraryOperation.SYNC_CREATIVES,
        idempotency_key=sync.idempotency_key,
        request_json=json.dumps(body, separators=(",", ":")),
        received_at=datetime.now(UTC),
    )
    app = request.app
    codecs, settings = app[keys.CODECS], app[keys.SETTINGS]
    await app[keys.BROKER].publish(
        topic("library_commands").full_name(settings.topic_prefix),
        key=codecs.key("library_commands").encode(command.account_id),
        value=codecs.value("library_commands").encode(command),
    )
    app[keys.METRICS].published.labels("library_commands").inc()
    answer: dict[str, Any] = {"status": "submitted", "task_id": command.command_id}
    if "context" in body:
        answer["context"] = body["context"]
    return web.json_response(answer, status=202)

