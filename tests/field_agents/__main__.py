"""`python -m tests.field_agents CONFIG_JSON`: serve field agents in this process (one port each)
until killed; prints `ready` once all of them listen. A process of its own, so that a test can
kill -9 an agent and start it again on the same port."""
from __future__ import annotations

import asyncio
import json
import logging
import sys

from tests.field_agents.agent import FieldAgentConfig, serve


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    configs = [FieldAgentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in c.items()})
               for c in json.loads(sys.argv[1])]
    asyncio.run(serve(configs, ready=lambda: print("ready", flush=True)))


if __name__ == "__main__":
    main()
