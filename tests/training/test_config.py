import pytest

from training.config import TrainConfig, parse_config
from training.errors import TrainingError


def test_defaults_are_valid() -> None:
    config = parse_config([])
    assert config == TrainConfig()
    config.validate()


def test_command_line_options_reach_the_config() -> None:
    config = parse_config(
        [
            "--dataset=wine",
            "--n-estimators=7",
            "--max-depth=3",
            "--test-size=0.3",
            "--random-state=1",
            "--model-name=x",
        ]
    )
    assert config == TrainConfig("wine", 7, 3, 0.3, 1, "x")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            TrainConfig(dataset="mnist"),
            "unknown dataset 'mnist': choose one of iris, wine, diabetes",
        ),
        (TrainConfig(n_estimators=0), "--n-estimators must be at least 1, got 0"),
        (TrainConfig(n_estimators=-3), "--n-estimators must be at least 1, got -3"),
        (TrainConfig(max_depth=0), "--max-depth must be at least 1, got 0"),
        (TrainConfig(test_size=0.0), "--test-size must be between 0 and 1, got 0.0"),
        (TrainConfig(test_size=1.0), "--test-size must be between 0 and 1, got 1.0"),
        (TrainConfig(test_size=-0.2), "--test-size must be between 0 and 1, got -0.2"),
        (TrainConfig(test_size=float("nan")), "--test-size must be between 0 and 1, got nan"),
        (TrainConfig(model_name="  "), "--model-name must not be empty"),
    ],
)
def test_impossible_options_are_rejected(config: TrainConfig, message: str) -> None:
    with pytest.raises(TrainingError) as caught:
        config.validate()
    assert str(caught.value) == message


def test_no_max_depth_is_allowed() -> None:
    TrainConfig(max_depth=None).validate()
