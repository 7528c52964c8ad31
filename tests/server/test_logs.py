"""Structured logs: one JSON object per line, with the fields passed in `extra`."""

import logging

import orjson

from server.logs import JSONFormatter


def test_a_record_is_one_json_line_with_its_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "server", "levelname": "INFO", "msg": "model %s", "args": ("swapped",),
         "version": "3"}
    )  # fmt: skip
    line = JSONFormatter().format(record)
    assert "\n" not in line
    entry = orjson.loads(line)
    assert entry["message"] == "model swapped"
    assert entry["level"] == "info"
    assert entry["version"] == "3"
    assert entry["time"].endswith("Z")


def test_exceptions_are_one_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "failed", (), exc_info=__import__("sys").exc_info()
        )
    entry = orjson.loads(JSONFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]
