"""The pure parts of the harness: wrk's summary, Lua quoting, answers, spreads, tables."""

import pytest

from loadtest.mlflow_models import label_index
from loadtest.stats import spread
from loadtest.table import duration, render
from loadtest.wrk import MARKER, WrkError, lua_string, parse_summary

SUMMARY = (
    f'Running 1s test\n{MARKER}{{"requests":2000,"duration_us":2000000,"bytes":1,"connect":0,"read":1,'
    '"write":0,"status":3,"timeout":2,"p50_us":400,"p95_us":900,"p99_us":1500,"max_us":9000,'
    '"mean_us":450.5}\n'
)


def test_parse_summary() -> None:
    result = parse_summary(SUMMARY, concurrency=16)
    assert result.rps == 1000
    assert (result.p50_ms, result.p95_ms, result.p99_ms) == (0.4, 0.9, 1.5)
    assert (result.errors, result.non_2xx, result.socket_errors) == (6, 3, 3)


def test_parse_summary_without_marker_fails() -> None:
    with pytest.raises(WrkError, match="no summary"):
        parse_summary("unable to connect to 127.0.0.1:1", concurrency=1)


def test_lua_string_escapes_everything_but_plain_characters() -> None:
    assert lua_string('Bearer a"b\\c é') == '"Bearer a\\034b\\092c \\195\\169"'


@pytest.mark.parametrize(
    ("answer", "index"),
    [
        ({"prediction": "versicolor", "confidence": 0.9}, 1),
        ({"predictions": [2]}, 2),
        ({"predictions": {"label": [0], "probabilities": [[1.0, 0.0, 0.0]]}}, 0),
        ({"predictions": [{"label": 1, "probabilities": [0.1, 0.9, 0.0]}]}, 1),
        ({"error_code": "BAD_REQUEST"}, None),
    ],
)
def test_label_index(answer: object, index: int | None) -> None:
    assert label_index(answer, ["setosa", "versicolor", "virginica"]) == index


def test_spread_and_units() -> None:
    s = spread([10.0, 12.0, 11.0])
    assert (s.median, s.low, s.high) == (11.0, 10.0, 12.0)
    assert s.noise == pytest.approx(2 / 11)
    assert [duration(x) for x in (0.0071, 4.4, 12.3, 3100)] == [
        "7.1 µs",
        "4.40 ms",
        "12.3 ms",
        "3.10 s",
    ]


def test_render_markdown() -> None:
    assert render(["a", "bb"], [["1", "2"]], markdown=True).splitlines() == [
        "| a | bb |",
        "|---|----|",
        "| 1 | 2  |",
    ]
