from pathlib import Path

import pytest

from server.settings import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.model_uri == "models:/iris-classifier@production"
    assert settings.port == 8000
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.max_batch == 1000
    assert settings.poll_seconds == 30.0
    assert settings.challenger_mode == "off"
    assert settings.api_keys == frozenset()


def test_reads_every_variable(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("from-file\n\nline-two, and-a-comma\n")
    settings = Settings.from_env(
        {
            "MODEL_URI": "models:/wine-classifier/3",
            "MLFLOW_TRACKING_URI": "http://mlflow:5000",
            "MODEL_FALLBACK_PATH": "/opt/model",
            "PORT": "9000",
            "WORKERS": "1",
            "LOG_LEVEL": "DEBUG",
            "MAX_BODY_BYTES": "100",
            "MAX_BATCH": "10",
            "MAX_CONCURRENCY": "64",
            "MODEL_POLL_SECONDS": "0",
            "CHALLENGER_URI": "models:/wine-classifier@challenger",
            "CHALLENGER_MODE": "split",
            "CHALLENGER_TRAFFIC": "0.25",
            "DRIFT_WINDOW": "500",
            "API_KEYS": "a, b",
            "API_KEYS_FILE": str(keys),
        }
    )
    assert settings.model_uri == "models:/wine-classifier/3"
    assert settings.tracking_uri == "http://mlflow:5000"
    assert settings.fallback_path == Path("/opt/model")
    assert (settings.port, settings.log_level) == (9000, "debug")
    assert (settings.max_body_bytes, settings.max_batch, settings.max_concurrency) == (100, 10, 64)
    assert settings.poll_seconds == 0.0
    assert settings.challenger_mode == "split"
    assert settings.challenger_traffic == 0.25
    assert settings.drift_window == 500
    assert settings.api_keys == frozenset({"a", "b", "from-file", "line-two", "and-a-comma"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT must be a number"),
        ({"MAX_BATCH": "0"}, "MAX_BATCH must be at least 1"),
        ({"MODEL_POLL_SECONDS": "-1"}, "MODEL_POLL_SECONDS must be at least 0"),
        ({"CHALLENGER_MODE": "canary"}, "CHALLENGER_MODE must be off, split or shadow"),
        ({"CHALLENGER_MODE": "split"}, "needs CHALLENGER_URI"),
        ({"CHALLENGER_TRAFFIC": "1.5"}, "between 0 and 1"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"WORKERS": "2"}, "one worker per process"),
        ({"API_KEYS_FILE": "/nonexistent/keys"}, "API_KEYS_FILE"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_loop_settings_are_parsed_and_checked() -> None:
    settings = Settings.from_env(
        {
            "RECORD_PREDICTIONS": "false",
            "PREDICTION_STORE_URI": "postgresql://loop:secret@db:5432/predictions",
            "RECORD_SAMPLE_RATE": "0.25",
            "RECORD_BUFFER_ROWS": "1000",
            "QUALITY_MARGIN": "0.1",
            "QUALITY_MIN_LABELS": "30",
        }
    )
    assert settings.record_predictions is False
    assert settings.prediction_store_uri == "postgresql://loop:secret@db:5432/predictions"
    assert settings.record_sample_rate == 0.25
    assert settings.record_buffer_rows == 1000
    assert (settings.quality_margin, settings.quality_min_labels) == (0.1, 30)
    assert Settings().prediction_store_uri.endswith("/.loop/predictions.db")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"RECORD_SAMPLE_RATE": "1.5"}, "RECORD_SAMPLE_RATE must be between 0 and 1"),
        ({"RECORD_BUFFER_ROWS": "0"}, "RECORD_BUFFER_ROWS must be at least 1"),
        ({"RECORD_PREDICTIONS": "maybe"}, "RECORD_PREDICTIONS must be true or false"),
        ({"QUALITY_MARGIN": "1"}, "QUALITY_MARGIN must be below 1"),
    ],
)
def test_bad_loop_settings_are_refused(env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        Settings.from_env(env)


def test_a_bad_store_uri_is_refused_without_echoing_it() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"PREDICTION_STORE_URI": "mysql://root:hunter2@db/x"})
    assert "PREDICTION_STORE_URI must be" in str(refused.value)
    assert "hunter2" not in str(refused.value)
