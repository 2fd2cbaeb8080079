"""Runs the gateway process (aiohttp), with structured JSON access logs."""
from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from creative_sync import gc_policy, logs
from creative_sync.settings import Settings


class JsonAccessLogger(AbstractAccessLogger):
    def log(self, request, response, time: float) -> None:  # noqa: ANN001
        self.logger.info("request", extra={"method": request.method, "path": request.path, "status": response.status,
                                           "duration_ms": round(time * 1000, 2), "remote": request.remote})


def run_gateway(settings: Settings) -> None:
    from gateway.app import create_app

    logs.configure(settings.log_level, settings.log_format)
    assert settings.bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS is required (or use `creative-sync up`)"
    gc_policy.install()  # the read model holds every creative
    web.run_app(create_app(settings), host=settings.gateway_host, port=settings.gateway_port,
                access_log_class=JsonAccessLogger, print=None)
