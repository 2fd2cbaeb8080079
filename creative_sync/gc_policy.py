"""The garbage-collector policy of the long-running processes (worker and gateway).

Both keep large long-lived state in memory (the gateway's read model holds every creative, the
worker its views and faust's machinery), and each of CPython's full collections walks all of it:
at 60,000 creatives a full collection stopped the gateway for 100-190 ms and the worker for
30-50 ms, several times a minute, and every request in flight waited (it was most of a
`sync_creatives` request's p99). What survived a full collection is long-lived, so it is taken out
of the collector's sight (`gc.freeze`) and the next full collections walk only what came since.
Frozen objects still die by reference counting as usual; only reference cycles among them would
outlive their use, so once every `thaw_every_s` everything is handed back to the collector for
one whole collection.

The youngest generation is also collected less often: the default collects it every 700 new
container objects, and a worker delivering to ten agents allocates hundreds of thousands a second
(pydantic models, Avro dicts), nearly all freed at once by reference counting. At 20,000 the
collector runs a twentieth as often; deliveries in the short bench (`--events 300 --requests 20
--sync-creatives 3000`) went from 5,000-5,300 to 6,100-6,300 a second (two runs each).
"""
from __future__ import annotations

import gc
import time
from collections.abc import Callable

_installed: list[Callable[[str, dict], None]] = []
_default_thresholds = gc.get_threshold()


def install(thaw_every_s: float = 3600.0, young_threshold: int = 20_000) -> Callable[[str, dict], None]:
    """Install the policy (once per process): survivors of full collections frozen, the youngest
    generation collected every `young_threshold` new objects. Returns the collector callback."""
    if _installed:
        return _installed[0]
    gc.set_threshold(young_threshold, *_default_thresholds[1:])
    last_thaw = time.monotonic()

    def after_collection(phase: str, info: dict) -> None:
        nonlocal last_thaw
        if phase != "stop" or info["generation"] != 2:
            return
        if time.monotonic() - last_thaw >= thaw_every_s:
            gc.unfreeze()  # the next full collection sees everything again, cycles included
            last_thaw = time.monotonic()
        else:
            gc.freeze()

    gc.callbacks.append(after_collection)
    _installed.append(after_collection)
    return after_collection


def uninstall() -> None:
    for callback in _installed:
        gc.callbacks.remove(callback)
    _installed.clear()
    gc.unfreeze()
    gc.set_threshold(*_default_thresholds)
