"""Structured logs for every process: one JSON object per line (or plain text for humans),
with secrets masked before anything is written."""
from __future__ import annotations

import logging
import logging.config
import re
from typing import Any

_SECRET = re.compile(r"(?i)(bearer\s+|x-adcp-auth[\"']?\s*[:=]\s*[\"']?|token[\"']?\s*[:=]\s*[\"']?|secret[\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9._~+/=-]{6,})")


def mask_secrets(text: str) -> str:
    return _SECRET.sub(lambda m: m.group(1) + "***", text)


class RedactSecrets(logging.Filter):
    """Masks bearer tokens and token/secret values in messages and their arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = mask_secrets(record.msg)
        return True


def logging_config(level: str = "INFO", fmt: str = "json") -> dict[str, Any]:
    formatter = (
        {"()": "pythonjsonlogger.json.JsonFormatter",
         "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
         "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactSecrets}},
        "formatters": {"default": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default", "filters": ["redact"],
                                "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        # The HTTP and MCP clients log every request at INFO: thousands of lines per sync.
        "loggers": {"aiokafka": {"level": "WARNING"}, "aiohttp.access": {"level": "INFO"},
                    "httpx": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}, "mcp": {"level": "WARNING"},
                    "adcp": {"level": "WARNING"}},
    }


def configure(level: str = "INFO", fmt: str = "json") -> None:
    logging.config.dictConfig(logging_config(level, fmt))
