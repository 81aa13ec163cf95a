"""The admin's credentials: given by the operator, or generated once and kept in the data directory.

The same pair signs in to the REST API (HTTP Basic) and is the root access/secret key of the
embedded S3 store, as MinIO's root user is in OSCAR.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from oscarpy.config import Settings
from oscarpy.log import register_secret

CREDENTIALS_FILE = "credentials.json"
_PASSWORD_BYTES = 24


@dataclass(frozen=True)
class AdminCredentials:
    username: str
    password: str
    generated: bool
    """True when the password was generated on this or an earlier start (not given by the user)."""


class CredentialsError(RuntimeError):
    pass


def credentials_path(data_dir: Path) -> Path:
    return data_dir / CREDENTIALS_FILE


def load_or_create_admin(settings: Settings) -> AdminCredentials:
    """The password from settings, else the stored one, else a new one written with mode 0600."""
    if settings.password is not None:
        password = settings.password.get_secret_value()
        if not password:
            raise CredentialsError("OSCAR_PASSWORD is set but empty; unset it or give a password")
        register_secret(password)
        return AdminCredentials(settings.username, password, generated=False)
    path = credentials_path(settings.data_dir)
    stored = read_credentials_file(path)
    if (
        stored is not None
        and stored.get("username") == settings.username
        and stored.get("password")
    ):
        register_secret(stored["password"])
        return AdminCredentials(settings.username, stored["password"], generated=True)
    password = secrets.token_urlsafe(_PASSWORD_BYTES)
    register_secret(password)
    write_credentials_file(path, {"username": settings.username, "password": password})
    return AdminCredentials(settings.username, password, generated=True)


def read_credentials_file(path: Path) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise CredentialsError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise CredentialsError(f"{path} does not hold a JSON object")
    return {str(key): str(value) for key, value in data.items()}


def write_credentials_file(path: Path, data: dict[str, str]) -> None:
    """Write atomically, readable by the owner only from the first byte on."""
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def record_endpoints(settings: Settings, api_endpoint: str, s3_endpoint: str) -> None:
    """Note where a generated-password server listens, so that the CLI on this host can find it."""
    path = credentials_path(settings.data_dir)
    stored = read_credentials_file(path)
    if stored is None:
        return
    stored.update({"endpoint": api_endpoint, "s3_endpoint": s3_endpoint})
    write_credentials_file(path, stored)
