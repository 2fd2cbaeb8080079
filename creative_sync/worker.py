"""Runs one faust worker process: topics ensured first (co-partitioning needs the catalogue's
partition counts, not the broker's auto-create default), then the faust worker until a signal."""
from __future__ import annotations

import asyncio

from creative_sync import gc_policy
from creative_sync.logs import logging_config
from creative_sync.settings import Settings
from topics.admin import ensure_topics
from topics.catalogue import all_specs


def run_worker(settings: Settings) -> None:
    import faust  # heavy: imported only in the process that runs a worker

    from streams.app import create_app

    assert settings.bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS is required (or use `creative-sync up`)"
    asyncio.run(ensure_topics(settings.bootstrap_servers, all_specs(settings.app_id), settings.topic_prefix))
    pipeline = create_app(settings)
    worker = faust.Worker(
        pipeline.app,
        loglevel=settings.log_level,
        logging_config=logging_config(settings.log_level, settings.log_format),
        redirect_stdouts=False,
    )
    gc_policy.install()
    worker.execute_from_commandline()
