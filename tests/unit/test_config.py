from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from oscarpy.config import Settings


def test_defaults_listen_on_loopback_with_a_data_dir_under_the_data_home() -> None:
    settings = Settings()
    assert (settings.host, settings.port, settings.s3_port) == ("127.0.0.1", 8080, 9000)
    assert settings.runtime == "docker"
    assert "oscar-py" in str(settings.data_dir)
    assert settings.state_database_url == f"sqlite:///{settings.data_dir / 'oscar.db'}"


def test_environment_variables_use_the_oscar_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OSCAR_PORT", "8181")
    monkeypatch.setenv("OSCAR_S3_PORT", "9191")
    monkeypatch.setenv("OSCAR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("OSCAR_USERNAME", "admin")
    monkeypatch.setenv("OSCAR_PASSWORD", "s3cret-pass")
    monkeypatch.setenv("OSCAR_RUNTIME", "process")
    monkeypatch.setenv("OSCAR_LOG_LEVEL", "debug")
    settings = Settings()
    assert (settings.port, settings.s3_port, settings.data_dir) == (8181, 9191, tmp_path)
    assert settings.username == "admin"
    assert settings.password is not None and settings.password.get_secret_value() == "s3cret-pass"
    assert (settings.runtime, settings.log_level) == ("process", "DEBUG")


def test_flags_given_as_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSCAR_PORT", "8181")
    assert Settings(port=7070).port == 7070


def test_password_is_never_shown_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSCAR_PASSWORD", "very-secret-value")
    assert "very-secret-value" not in repr(Settings())


@pytest.mark.parametrize(
    ("name", "value"),
    [("OSCAR_PORT", "70000"), ("OSCAR_RUNTIME", "kubernetes"), ("OSCAR_LOG_LEVEL", "LOUD")],
)
def test_invalid_values_are_rejected_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert name.removeprefix("OSCAR_").lower() in str(raised.value)


def test_relative_data_dir_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings(data_dir=Path("data")).data_dir == tmp_path / "data"


def test_endpoints_for_a_wildcard_listener_point_at_this_host() -> None:
    settings = Settings(host="0.0.0.0", port=0, s3_port=0)
    assert settings.api_endpoint(8123) == "http://127.0.0.1:8123"
    assert settings.s3_endpoint(9123) == "http://127.0.0.1:9123"
    assert Settings(public_s3_endpoint="https://s3.example.org/").s3_endpoint() == (
        "https://s3.example.org"
    )


def test_postgres_urls_select_the_psycopg_driver() -> None:
    from oscarpy.db import normalise_url

    assert normalise_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalise_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_job_limits_default_to_10_gib_written_and_100_mib_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings()
    assert settings.job_disk_limit == 10 * 1024**3
    assert settings.job_log_flood_limit == 100 * 1024**2
    monkeypatch.setenv("OSCAR_JOB_DISK_LIMIT", str(64 * 1024**2))
    monkeypatch.setenv("OSCAR_JOB_LOG_FLOOD_LIMIT", str(32 * 1024**2))
    assert (Settings().job_disk_limit, Settings().job_log_flood_limit) == (64 * 2**20, 32 * 2**20)


def test_the_log_flood_limit_cannot_be_below_the_kept_log() -> None:
    with pytest.raises(
        ValidationError, match=r"job_log_flood_limit\n.*1048576 is below job_log_limit \(2097152\)"
    ):
        Settings(job_log_limit=2 * 1024**2, job_log_flood_limit=1024**2)
