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


class RepeatedMessages(logging.Filter):
    """The same message (logger and text) at most once per `window_s`: a lost broker makes the Kafka
    client log every reconnection attempt (~120 ERROR lines a second were seen); the log says it
    once a minute, and a change of state (another message: the first failure, the recovery) at once."""

    def __init__(self, window_s: float = 60.0, clock: Any = None) -> None:
        super().__init__()
        self.window_s = window_s
        self._clock = clock or __import__("time").monotonic
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key, now = (record.name, record.getMessage()), self._clock()
        if now - self._last.get(key, float("-inf")) < self.window_s:
            return False
        self._last[key] = now
        if len(self._last) > 10_000:  # bounded
            self._last.clear()
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
        "filters": {"redact": {"()": RedactSecrets}, "repeated": {"()": RepeatedMessages}},
        "formatters": {"default": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default", "filters": ["repeated", "redact"],
                                "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        # The HTTP and MCP clients log every request at INFO: thousands of lines per sync.
        "loggers": {"aiokafka": {"level": "WARNING"}, "aiohttp.access": {"level": "INFO"},
                    "httpx": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}, "mcp": {"level": "WARNING"},
                    "adcp": {"level": "WARNING"}},
    }


def configure(level: str = "INFO", fmt: str = "json") -> None:
    logging.config.dictConfig(logging_config(level, fmt))
