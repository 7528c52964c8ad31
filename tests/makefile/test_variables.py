"""The variables a reader would reach for do what they say: MODEL, DATASET, VERSION, HOST, ..."""

import pytest

from tests.makefile.make import command_of, dry_run
from training.datasets import DATASET_NAMES, default_model_name


def serve_command(*args: str) -> str:
    return command_of(dry_run("serve", *args), "-m server")


@pytest.mark.parametrize(
    ("args", "uri"),
    [
        ((), "models:/iris-classifier@production"),
        (("MODEL=wine-classifier",), "models:/wine-classifier@production"),
        (("DATASET=diabetes",), "models:/diabetes-regressor@production"),
        (("MODEL=wine-classifier", "ALIAS=staging"), "models:/wine-classifier@staging"),
        (("MODEL=wine-classifier", "VERSION=2"), "models:/wine-classifier/2"),
        (("MODEL=wine-classifier", "MODEL_URI=build/model"), "build/model"),
    ],
)
def test_serve_derives_the_model_uri(args: tuple[str, ...], uri: str) -> None:
    assert f'MODEL_URI="{uri}" ' in serve_command(*args)


def test_serve_binds_loopback_unless_told_otherwise() -> None:
    assert 'HOST="127.0.0.1" PORT="8000" ' in serve_command()
    assert 'HOST="0.0.0.0" PORT="9001" ' in serve_command("HOST=0.0.0.0", "PORT=9001")


def train_command(*args: str) -> str:
    return command_of(dry_run("train", *args), "-m training")


@pytest.mark.parametrize(
    ("args", "options"),
    [
        ((), '--dataset "iris"'),
        (("DATASET=wine",), '--dataset "wine"'),
        (("DATASET=wine", "MODEL=wine-test"), '--dataset "wine" --model-name "wine-test"'),
        (
            ("N_ESTIMATORS=10", "MAX_DEPTH=3", "RANDOM_STATE=7", "TEST_SIZE=0.3"),
            '--dataset "iris" --n-estimators "10" --max-depth "3" --random-state "7" '
            '--test-size "0.3"',
        ),
        # ARGS keeps working, and comes last, so it wins over a variable.
        (("DATASET=wine", "ARGS=--dataset diabetes"), '--dataset "wine" --dataset diabetes'),
    ],
)
def test_train_takes_its_options_from_variables(args: tuple[str, ...], options: str) -> None:
    assert train_command(*args).split("-m training ", 1)[1].strip() == options


@pytest.mark.parametrize("dataset", DATASET_NAMES)
def test_the_lifecycle_targets_follow_the_dataset(dataset: str) -> None:
    """The model the Makefile names for a dataset is the one training registers for it."""
    name = default_model_name(dataset)
    assert f'--model "{name}"' in command_of(dry_run("models", f"DATASET={dataset}"), "lifecycle")
    promote = command_of(dry_run("promote", f"DATASET={dataset}", "VERSION=2"), "lifecycle")
    assert f'promote --model "{name}" --alias "production" --version "2"' in promote
    assert f"models:/{name}@production" in serve_command(f"DATASET={dataset}")


def test_promote_passes_force() -> None:
    assert command_of(dry_run("promote", "VERSION=2", "FORCE=1"), "lifecycle").endswith("--force")
    assert "--force" not in command_of(dry_run("promote", "VERSION=2"), "lifecycle")


@pytest.mark.parametrize("target", ["retrain", "judge"])
def test_the_prediction_stores_password_is_never_echoed(target: str) -> None:
    store = "postgresql://loop:Pw-s3cret@db:5432/predictions"
    assert not [
        line for line in dry_run(target, f"PREDICTION_STORE_URI={store}") if "s3cret" in line
    ]


def test_mlflow_reader_leaves_the_model_list_to_the_environment_unless_given() -> None:
    command = command_of(dry_run("mlflow-reader"), "mlflow_reader.py")
    assert "MLFLOW_READER_MODELS" not in command
    given = command_of(dry_run("mlflow-reader", "READER_MODELS=a,b"), "mlflow_reader.py")
    assert 'MLFLOW_READER_MODELS="a,b"' in given
