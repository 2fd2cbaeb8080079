"""What `creative-sync up` shows on its console, and how it restarts its children: pure parts.

The children write JSON log lines to var/log/<role>.log; the console shows one line per
meaningful event among them (a sales agent discovered, its calls failing or succeeding again, an
error), and the same error once a minute at most, not once per retry. A crashed child is started
again after a backoff that grows while it keeps crashing and starts over once it has run a while.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

#: INFO and WARNING messages worth a console line: they tell a state change, once per change
_NEWS = ("discovered", "calls failing", "calls succeed again", "dropped ", "not starting")


@dataclass
class Console:
    repeat_after_s: float = 60.0
    width: int = 160
    _shown: dict[tuple[str, str], float] = field(default_factory=dict)

    def line(self, role: str, raw: str, now: float) -> str | None:
        """The console line for one log line of child `role`, or None (not news, or shown lately)."""
        try:
            record = json.loads(raw)
        except ValueError:
            return None  # not one of our log lines (a library printing on its own): the log file has it
        if not isinstance(record, dict):
            return None
        level, message = str(record.get("level", "")), str(record.get("message", ""))
        if level in ("ERROR", "CRITICAL"):
            kind = "error"
        elif level in ("INFO", "WARNING") and any(news in message for news in _NEWS):
            kind = level.lower()
        else:
            return None
        key = (role, message[:60])
        if now - self._shown.get(key, float("-inf")) < self.repeat_after_s:
            return None
        self._shown[key] = now
        text = f"{role:8} {'' if kind == 'info' else kind + ': '}{message}"
        return text if len(text) <= self.width else text[: self.width - 1] + "…"


@dataclass
class Backoff:
    """A crashed child's next start: 1, 2, 4 ... `cap_s` seconds after it stopped, back to 1 s once it
    had run `stable_s` before crashing."""

    base_s: float = 1.0
    cap_s: float = 30.0
    stable_s: float = 60.0
    crashes: int = 0

    def delay(self, ran_for_s: float) -> float:
        self.crashes = 1 if ran_for_s >= self.stable_s else self.crashes + 1
        return min(self.cap_s, self.base_s * 2 ** (self.crashes - 1))
