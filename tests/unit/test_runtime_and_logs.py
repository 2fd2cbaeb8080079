"""Dead letters keep everything needed to inspect and replay; logs never carry secrets; how long a take gathers."""
from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from creative_sync.logs import RedactSecrets, mask_secrets
from streams.runtime import dead_letter_for, take_wait
from topics.codec import AvroCodec
from topics.events import FailureStage


def test_dead_letter_records_raw_bytes_coordinates_stage_and_error():
    message = SimpleNamespace(topic="t.commands", partition=3, offset=41, key=b"k", value=b"\x00garbage", timestamp=1_700_000_000.5)
    letter = dead_letter_for(message, FailureStage.DECODE, "library", ValueError("bad header"), datetime(2026, 1, 1, tzinfo=UTC))
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("t.commands", 3, 41)
    assert letter.raw_value == b"\x00garbage" and letter.raw_key == b"k"
    assert letter.stage is FailureStage.DECODE and letter.error_type == "ValueError" and "bad header" in letter.error_message
    assert letter.dead_letter_id == "t.commands/3/41/DECODE"
    assert AvroCodec("dead_letter").decode(AvroCodec("dead_letter").encode(letter))["raw_value"] == b"\x00garbage"


def test_bearer_tokens_and_secrets_are_masked():
    assert "abcdef123456" not in mask_secrets("Authorization: Bearer abcdef123456")
    assert "s3cr3t-value" not in mask_secrets('{"webhook_secret": "s3cr3t-value"}')
    assert mask_secrets("nothing to hide") == "nothing to hide"


def test_redaction_filter_masks_log_arguments():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "calling with %s", ("Bearer tok_1234567890",), None)
    RedactSecrets().filter(record)
    assert "tok_1234567890" not in record.getMessage()


def test_a_message_repeated_by_every_retry_is_logged_once_a_minute_and_another_at_once():
    import logging

    from creative_sync.logs import RepeatedMessages

    clock = [0.0]
    repeated = RepeatedMessages(window_s=60, clock=lambda: clock[0])

    def passes(message: str, *args) -> bool:
        return repeated.filter(logging.LogRecord("aiokafka", logging.ERROR, "f", 1, message, args, None))
    lost = "Unable connect to node with id %s: Connect call failed"
    assert passes(lost, 1)
    shown = sum(passes(lost, 1) for clock[0] in [n / 120 for n in range(1, 120 * 59)])  # 120 attempts a second
    assert shown == 0
    assert passes("sales agent %s: calls failing", "a") and passes("sales agent %s: calls failing", "b")  # others at once
    clock[0] = 61
    assert passes(lost, 1)  # a minute on: said again


def test_a_take_gathers_until_its_window_ends_or_the_events_pause():
    # Without `quiet`: the window from the first event, whatever comes after.
    assert take_wait(10.0, first_at=10.0, last_at=10.0, within=4.0) == pytest.approx(4.0)
    assert take_wait(13.5, first_at=10.0, last_at=13.4, within=4.0) == pytest.approx(0.5)
    assert take_wait(14.2, first_at=10.0, last_at=14.1, within=4.0) == pytest.approx(0.0)
    # With `quiet`: a burst ends the take soon after its last event...
    assert take_wait(10.1, first_at=10.0, last_at=10.1, within=4.0, quiet=0.25) == pytest.approx(0.25)
    assert take_wait(10.4, first_at=10.0, last_at=10.1, within=4.0, quiet=0.25) == pytest.approx(0.0)
    # ...while a steady flow is gathered up to the window, never past it.
    assert take_wait(13.9, first_at=10.0, last_at=13.85, within=4.0, quiet=0.25) == pytest.approx(0.1)
    assert take_wait(14.0, first_at=10.0, last_at=14.0, within=4.0, quiet=0.25) == pytest.approx(0.0)
