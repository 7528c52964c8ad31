"""The hardening settings: shutdown timing, body deadline, access log, API keys."""

from pathlib import Path

import pytest

from server.settings import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.shutdown_delay_seconds == 5.0
    assert settings.shutdown_grace_seconds == 20.0
    assert settings.body_timeout_seconds == 10.0
    assert settings.access_log is False
    assert settings.api_keys == frozenset()


def test_values_and_zero() -> None:
    settings = Settings.from_env(
        {
            "SHUTDOWN_DELAY_SECONDS": "0",
            "SHUTDOWN_GRACE_SECONDS": "7.5",
            "BODY_TIMEOUT_SECONDS": "0",
            "ACCESS_LOG": "Yes",
        }
    )
    assert settings.shutdown_delay_seconds == 0.0
    assert settings.shutdown_grace_seconds == 7.5
    assert settings.body_timeout_seconds == 0.0  # 0 turns the deadline off
    assert settings.access_log is True


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("SHUTDOWN_DELAY_SECONDS", "-1", "between 0 and 300"),
        ("SHUTDOWN_GRACE_SECONDS", "soon", "number"),
        ("BODY_TIMEOUT_SECONDS", "-0.5", "between 0 and 3600"),
        ("ACCESS_LOG", "maybe", "true or false"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match=name) as caught:
        Settings.from_env({name: value})
    assert fragment in str(caught.value)


def test_api_keys_from_variable_and_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("from-file\n\n  spaced  \n")
    settings = Settings.from_env({"API_KEYS": "a, b,,", "API_KEYS_FILE": str(keys)})
    assert settings.api_keys == {"a", "b", "from-file", "spaced"}


@pytest.mark.parametrize("content", ["", "\n\n", " , ,\n,", "   "])
def test_a_key_file_without_keys_stops_the_server(tmp_path: Path, content: str) -> None:
    keys = tmp_path / "keys"
    keys.write_text(content)
    with pytest.raises(SettingsError, match=r"API_KEYS_FILE .* holds no keys"):
        Settings.from_env({"API_KEYS_FILE": str(keys)})


def test_a_key_variable_without_keys_stops_the_server() -> None:
    with pytest.raises(SettingsError, match="API_KEYS holds no keys"):
        Settings.from_env({"API_KEYS": " , ,"})


def test_the_key_file_path_is_kept_for_reloading(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("k1\n")
    settings = Settings.from_env({"API_KEYS_FILE": str(keys), "API_KEYS": "k0"})
    assert settings.api_keys_file == keys
    assert settings.api_keys == {"k0", "k1"}
