import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from server.settings import (
    GROUPS,
    VARIABLES,
    Settings,
    SettingsError,
    Variable,
    shown_default,
)


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
        ({"PORT": "http"}, "PORT must be a whole number"),
        ({"MAX_BATCH": "0"}, "MAX_BATCH must be between 1 and 100000"),
        ({"MODEL_POLL_SECONDS": "-1"}, "MODEL_POLL_SECONDS must be between 0 and 86400"),
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


def test_grpc_is_off_by_default_and_on_with_its_port() -> None:
    assert Settings.from_env({}).grpc_port == 0
    assert Settings.from_env({"GRPC_PORT": "8001"}).grpc_port == 8001


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GRPC_PORT": "-1"}, "GRPC_PORT must be between 0 and 65535"),
        ({"GRPC_PORT": "70000"}, "GRPC_PORT must be between 0 and 65535"),
        ({"PORT": "70000"}, "PORT must be between 1 and 65535"),
        ({"GRPC_PORT": "grpc"}, "GRPC_PORT must be a whole number"),
        ({"GRPC_PORT": "8000"}, "GRPC_PORT must differ from PORT"),
    ],
)
def test_a_bad_grpc_port_is_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_loop_settings_are_parsed_and_checked() -> None:
    settings = Settings.from_env(
        {
            "RECORD_PREDICTIONS": "true",
            "PREDICTION_STORE_URI": "postgresql://loop:secret@db:5432/predictions",
            "RECORD_SAMPLE_RATE": "0.25",
            "RECORD_BUFFER_ROWS": "1000",
            "QUALITY_MARGIN": "0.1",
            "QUALITY_MIN_LABELS": "30",
        }
    )
    assert settings.record_predictions is True
    assert Settings().record_predictions is False  # opt-in: it stores every request's features
    assert settings.prediction_store_uri == "postgresql://loop:secret@db:5432/predictions"
    assert settings.record_sample_rate == 0.25
    assert settings.record_buffer_rows == 1000
    assert (settings.quality_margin, settings.quality_min_labels) == (0.1, 30)
    assert Settings().prediction_store_uri.endswith("/.loop/predictions.db")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"RECORD_SAMPLE_RATE": "1.5"}, "RECORD_SAMPLE_RATE must be between 0 and 1"),
        ({"RECORD_BUFFER_ROWS": "0"}, "RECORD_BUFFER_ROWS must be between 1 and 1000000"),
        ({"RECORD_PREDICTIONS": "maybe"}, "RECORD_PREDICTIONS must be true or false"),
        ({"QUALITY_MARGIN": "1"}, "QUALITY_MARGIN must be between 0 and 0.99"),
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


# --- the table of variables: the server reads only what it declares, and declares it fully ---

ROOT = Path(__file__).resolve().parents[2]


class RecordingEnv(Mapping[str, str]):
    """An environment that notes every name looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        self.given = values
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self.given[name]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("from_env must look variables up by name, not list them")

    def __len__(self) -> int:
        return len(self.given)


def test_from_env_reads_every_declared_variable_and_no_other() -> None:
    env = RecordingEnv({})
    Settings.from_env(env)
    assert env.read == {variable.name for variable in VARIABLES}


def test_nothing_else_in_the_server_reads_the_environment() -> None:
    reads = re.compile(r"\bos\.environ\b|\bgetenv\b|\benviron\s*[\[.]")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "server").rglob("*.py"))
        if path.name != "settings.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if reads.search(line)
    ]
    assert not found, "read settings through server/settings.py's VARIABLES: " + "; ".join(found)


def test_every_settings_field_has_its_variable() -> None:
    fields = set(Settings.__dataclass_fields__)
    declared = [variable.field for variable in VARIABLES if variable.field is not None]
    assert len(declared) == len(set(declared))
    assert set(declared) <= fields
    # api_keys_from_variable is API_KEYS' share of api_keys, kept apart for reloading the file.
    assert fields - set(declared) == {"api_keys_from_variable"}
    names = [variable.name for variable in VARIABLES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("variable", VARIABLES, ids=lambda v: v.name)
def test_each_variable_is_documented_fully(variable: Variable) -> None:
    numeric = variable.kind in ("int", "float")
    assert (variable.bounds is not None) == numeric, "numbers, and only numbers, have a range"
    assert bool(variable.choices) >= (variable.kind == "choice")
    assert not variable.choices or variable.kind in ("choice", "list")
    assert variable.group in GROUPS
    text = variable.description
    assert text[0].isupper() or text[0] == "`", text
    assert text.endswith("."), text
    assert ". " not in text.replace("e.g. ", ""), f"one sentence: {text}"
    default = shown_default(variable)
    if variable.bounds is not None:
        low, high = variable.bounds
        assert low <= float(default) <= high
        if variable.kind == "int":
            assert (low, high) == (int(low), int(high))
        if low == 0:
            assert re.search(r"\b0: ", text), f"{variable.name} says what 0 means"
    if variable.kind == "choice":
        assert default in variable.choices


def test_the_chart_sets_only_variables_the_server_reads() -> None:
    templates = ROOT / "charts/platform/charts/api/templates"
    config = re.findall(r"^  ([A-Z][A-Z0-9_]+):", (templates / "configmap.yaml").read_text(), re.M)
    env = re.findall(
        r"- name: ([A-Z][A-Z0-9_]+)$", (templates / "deployment.yaml").read_text(), re.M
    )
    assert len(config) > 20
    assert env
    assert set(config + env) <= {variable.name for variable in VARIABLES}


def test_a_choice_names_what_it_takes() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"CHALLENGER_MODE": "canary"})
    assert str(refused.value) == "CHALLENGER_MODE must be off, split or shadow, got 'canary'"
