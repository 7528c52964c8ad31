"""Every numeric setting has a range; a value outside it stops the server at start."""

from pathlib import Path

import pytest

from server.settings import NUMERIC_RANGES, Settings, SettingsError

DOCS = Path(__file__).resolve().parents[2] / "docs"


def shown(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


@pytest.mark.parametrize(("name", "bounds"), sorted(NUMERIC_RANGES.items()))
def test_each_bound_is_accepted_and_one_step_past_it_refused(
    name: str, bounds: tuple[float, float]
) -> None:
    low, high = bounds
    base = {"CHALLENGER_URI": "models:/m@c"}  # lets CHALLENGER_TRAFFIC be read on its own
    if name == "DRIFT_MIN_ROWS":
        base["DRIFT_WINDOW"] = str(int(high))
    if name == "DRIFT_WINDOW":
        base["DRIFT_MIN_ROWS"] = "1"
    if name == "DRIFT_WARNING_PSI":
        base["DRIFT_THRESHOLD_PSI"] = str(high)
    if name == "DRIFT_THRESHOLD_PSI":
        base["DRIFT_WARNING_PSI"] = str(low)
    for value in (low, high):
        Settings.from_env({**base, name: shown(value)})
    step = 1 if all(v == int(v) for v in bounds) else 0.01
    for value in (low - step, high + step):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({**base, name: shown(value)})
        message = str(caught.value)
        assert name in message
        assert "\n" not in message


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999", "infinity"])
@pytest.mark.parametrize("name", ["MODEL_POLL_SECONDS", "BODY_TIMEOUT_SECONDS", "DRIFT_WINDOW"])
def test_not_a_finite_number_is_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_a_huge_drift_window_is_refused_at_start() -> None:
    with pytest.raises(SettingsError, match="DRIFT_WINDOW must be between 1 and 100000"):
        Settings.from_env({"DRIFT_WINDOW": "2000000000"})


def test_drift_minimum_cannot_exceed_the_window() -> None:
    with pytest.raises(SettingsError, match="DRIFT_MIN_ROWS"):
        Settings.from_env({"DRIFT_WINDOW": "200", "DRIFT_MIN_ROWS": "300"})


def test_drift_warning_must_not_exceed_the_drift_threshold() -> None:
    with pytest.raises(SettingsError, match="DRIFT_WARNING_PSI"):
        Settings.from_env({"DRIFT_WARNING_PSI": "0.3", "DRIFT_THRESHOLD_PSI": "0.2"})


def test_every_range_is_documented() -> None:
    """The generated reference gives each range as the code has it; security.md links to it."""
    rows = {
        line.split(" | ")[0].removeprefix("| ").strip("`"): line.split(" | ")
        for line in (DOCS / "reference" / "settings.md").read_text().splitlines()
        if line.startswith("| `")
    }
    for name, (low, high) in NUMERIC_RANGES.items():
        assert name in rows, f"docs/reference/settings.md has no row for {name}"
        assert rows[name][3] == f"{shown(low)} to {shown(high)}", rows[name]
    assert "(reference/settings.md)" in (DOCS / "security.md").read_text()


def test_every_numeric_setting_has_a_range() -> None:
    """A new numeric field without an entry in NUMERIC_RANGES fails here."""
    numeric = [
        f.name
        for f in Settings.__dataclass_fields__.values()
        if f.type in ("int", "float", int, float)
    ]
    assert len(numeric) == len(NUMERIC_RANGES), (numeric, sorted(NUMERIC_RANGES))


def test_a_small_drift_window_alone_brings_the_minimum_down_with_it() -> None:
    """The chart sets DRIFT_WINDOW only; a window under 300 must not stop the server."""
    assert Settings.from_env({"DRIFT_WINDOW": "200"}).drift_min_rows == 200
    assert Settings.from_env({"DRIFT_WINDOW": "5000"}).drift_min_rows == 300
    with pytest.raises(SettingsError, match="DRIFT_MIN_ROWS"):
        Settings.from_env({"DRIFT_WINDOW": "200", "DRIFT_MIN_ROWS": "250"})


@pytest.mark.parametrize("name", ["MODEL_POLL_SECONDS", "API_KEYS_RELOAD_SECONDS"])
def test_a_polling_interval_is_off_or_at_least_a_tenth_of_a_second(name: str) -> None:
    with pytest.raises(SettingsError, match=rf"{name} must be 0 \(off\) or at least 0.1"):
        Settings.from_env({name: "0.001"})
    Settings.from_env({name: "0"})
    Settings.from_env({name: "0.1"})


def test_the_settings_repr_shows_no_secret() -> None:
    settings = Settings.from_env(
        {
            "API_KEYS": "key-Zq83",
            "MLFLOW_TRACKING_PASSWORD": "pw-Lw51",
            "MLFLOW_TRACKING_TOKEN": "tok-9f3",
            "PREDICTION_STORE_URI": "postgresql://loop:db-7c1@db/predictions",
        }
    )
    shown = repr(settings)
    for secret in ("key-Zq83", "pw-Lw51", "tok-9f3", "db-7c1"):
        assert secret not in shown
