from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from oscarpy.auth.credentials import CredentialsError, load_or_create_admin, typeable_secret
from oscarpy.config import Settings


def test_a_password_is_generated_once_stored_owner_only_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = load_or_create_admin(settings)
    assert first.generated and len(first.password) >= 24
    stored = tmp_path / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert first.password in stored.read_text()
    assert load_or_create_admin(settings).password == first.password


def test_a_given_password_wins_and_is_not_written(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, password=SecretStr("given-password"))
    admin = load_or_create_admin(settings)
    assert (admin.password, admin.generated) == ("given-password", False)
    assert not (tmp_path / "credentials.json").exists()


def test_an_empty_password_is_an_error_not_an_open_door(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="OSCAR_PASSWORD"):
        load_or_create_admin(Settings(data_dir=tmp_path, password=SecretStr("")))


def test_a_new_username_gets_a_new_password(tmp_path: Path) -> None:
    first = load_or_create_admin(Settings(data_dir=tmp_path, username="alice"))
    second = load_or_create_admin(Settings(data_dir=tmp_path, username="bob"))
    assert second.username == "bob" and second.password != first.password


def test_a_corrupt_credentials_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "credentials.json").write_text("{not json")
    with pytest.raises(CredentialsError, match="credentials.json"):
        load_or_create_admin(Settings(data_dir=tmp_path))


def test_generated_secrets_never_start_with_a_dash() -> None:
    """A generated password is typed on command lines (`oscar cluster add ID URL USER
    PASSWORD`), where a leading `-` reads as an option: one in 64 did before (the CLI tests
    failed with `No such option: -j`). 4,000 draws: the old generator passes this with a
    probability of 1e-27."""
    drawn = [typeable_secret(24) for _ in range(4000)]
    assert not [secret for secret in drawn if secret.startswith("-")]
    assert len(set(drawn)) == len(drawn) and all(len(secret) == 32 for secret in drawn)
