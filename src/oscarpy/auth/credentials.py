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
SESSION_SECRET_FILE = "session-secret"
_PASSWORD_BYTES = 24
_SECRET_BYTES = 32


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
    password = typeable_secret(_PASSWORD_BYTES)
    register_secret(password)
    write_credentials_file(path, {"username": settings.username, "password": password})
    return AdminCredentials(settings.username, password, generated=True)


def typeable_secret(size: int) -> str:
    """A random URL-safe secret of `size` bytes that does not start with `-`: users pass these
    on command lines (`oscar cluster add ID URL USER PASSWORD`, oscar-cli), where a leading
    dash reads as an option (`No such option: -j`)."""
    while True:
        secret = secrets.token_urlsafe(size)
        if not secret.startswith("-"):
            return secret


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
    _write_owner_only(temporary, json.dumps(data, indent=2), os.O_TRUNC)
    os.replace(temporary, path)


def _write_owner_only(path: Path, text: str, mode_flag: int) -> None:
    """`text` in a new file of mode 0600, on disk before this returns."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | mode_flag, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o600)  # also when the file existed with another mode


def load_or_create_session_secret(data_dir: Path) -> bytes:
    """This installation's random secret for signing dashboard sessions, created once with mode
    0600 (exclusively: processes starting together on one data directory agree on it)."""
    path = data_dir / SESSION_SECRET_FILE
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        if path.exists():
            return _read_session_secret(path)
        _write_owner_only(temporary, secrets.token_hex(_SECRET_BYTES), os.O_EXCL)
        try:
            os.link(temporary, path)  # fails if another process made it first: theirs stands
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
    return _read_session_secret(path)


def _read_session_secret(path: Path) -> bytes:
    try:
        stored = path.read_text().strip()
    except OSError as error:
        raise CredentialsError(f"cannot read {path}: {error.strerror or error}") from error
    if len(stored) < 2 * _SECRET_BYTES:
        raise CredentialsError(f"{path} is damaged; remove it (everyone signs in again)")
    return stored.encode()


def record_endpoints(settings: Settings, api_endpoint: str, s3_endpoint: str) -> None:
    """Note where a generated-password server listens, so that the CLI on this host can find it."""
    path = credentials_path(settings.data_dir)
    stored = read_credentials_file(path)
    if stored is None:
        return
    stored.update({"endpoint": api_endpoint, "s3_endpoint": s3_endpoint})
    write_credentials_file(path, stored)
