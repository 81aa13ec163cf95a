"""The dashboard's session codec and its service form, without a server."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from starlette.datastructures import FormData, UploadFile

from oscarpy.auth.credentials import AdminCredentials
from oscarpy.auth.principal import ADMIN as ADMIN_PRINCIPAL
from oscarpy.auth.principal import Principal
from oscarpy.auth.revocations import Revocations
from oscarpy.auth.sessions import SessionCodec
from oscarpy.db import Database
from oscarpy.services.model import parse_service
from oscarpy.web.forms import ServiceForm

ADMIN = AdminCredentials("oscar", "first-password", generated=False)
SECRET = b"0" * 64


@pytest.fixture
def revocations(tmp_path: Path) -> Revocations:
    database = Database(f"sqlite:///{tmp_path / 'state.db'}")
    database.migrate()
    return Revocations(database)


def _codec(revocations: Revocations, admin: AdminCredentials = ADMIN) -> SessionCodec:
    return SessionCodec(admin, SECRET, revocations)


def test_a_session_reads_back_until_revoked(revocations: Revocations) -> None:
    codec = _codec(revocations)
    session, cookie = codec.issue()
    assert codec.read(cookie) == session
    assert codec.csrf_ok(session, session.csrf_token)
    assert not codec.csrf_ok(session, "") and not codec.csrf_ok(session, None)
    codec.revoke(session)
    assert codec.read(cookie) is None
    assert _codec(revocations).read(cookie) is None  # another codec on the same state DB


def test_a_users_session_carries_the_user_and_cannot_be_raised_to_admin(
    revocations: Revocations,
) -> None:
    codec = _codec(revocations)
    user = Principal("alice@example.org", admin=False, name="Alice")
    session, cookie = codec.issue(user)
    read = codec.read(cookie)
    assert read == session and read.username == "Alice"
    assert read.principal == Principal("alice@example.org", admin=False, name="Alice")
    assert codec.issue()[0].principal == ADMIN_PRINCIPAL  # the password's session: the admin

    payload, _, signature = cookie.partition(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for forged in ({**data, "a": True}, {**data, "i": ADMIN_PRINCIPAL.user_id}):
        encoded = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
        assert codec.read(f"{encoded}.{signature}") is None


def test_the_key_is_the_installations_not_the_passwords(revocations: Revocations) -> None:
    _session, cookie = _codec(revocations).issue()
    other = SessionCodec(ADMIN, b"1" * 64, revocations)
    assert other.read(cookie) is None


def test_a_changed_password_or_an_expired_session_signs_out(
    monkeypatch: pytest.MonkeyPatch, revocations: Revocations
) -> None:
    _session, cookie = _codec(revocations).issue()
    changed = AdminCredentials("oscar", "second-password", generated=False)
    assert _codec(revocations, changed).read(cookie) is None

    codec = _codec(revocations)
    _session, cookie = codec.issue()
    later = time.time() + 13 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    assert codec.read(cookie) is None


def test_the_password_check_wants_both_user_and_password(revocations: Revocations) -> None:
    codec = _codec(revocations)
    assert codec.check_password("oscar", "first-password")
    assert not codec.check_password("oscar", "first-passwor")
    assert not codec.check_password("root", "first-password")


def _submitted(**fields: str | list[str]) -> FormData:
    items: list[tuple[str, str | UploadFile]] = []
    for name, value in fields.items():
        for each in [value] if isinstance(value, str) else value:
            items.append((name, each))
    return FormData(items)


def test_the_form_becomes_a_valid_definition() -> None:
    form = ServiceForm.from_submission(
        _submitted(
            name="grey",
            image="busybox",
            script="echo hi\r\n",
            cpu="0.5",
            memory="128Mi",
            variables="A=1\n# a comment\n\nB = two=2\n",
            secrets="TOKEN=s3cr3t\n",
            input_path=["grey/in", ""],
            input_prefix=["img_, pic_", ""],
            input_suffix=[".png", ""],
            input_provider=["minio.default", "minio.default"],
            output_path=["grey/out"],
            output_prefix=[""],
            output_suffix=[""],
            output_provider=["minio.default"],
            max_concurrency="2",
            timeout="30",
            retries="1",
        )
    )
    service = parse_service(form.definition())
    assert service.script == "echo hi\n"
    assert service.environment.variables == {"A": "1", "B": " two=2"}
    assert service.environment.secrets == {"TOKEN": "s3cr3t"}
    assert [path.path for path in service.input] == ["grey/in"]
    assert service.input[0].prefix == ["img_", "pic_"] and service.input[0].suffix == [".png"]
    assert (service.max_concurrency, service.timeout, service.retries) == (2, 30.0, 1)


def test_editing_keeps_what_the_form_does_not_show_and_hides_secret_values() -> None:
    stored = parse_service(
        {
            "name": "grey",
            "image": "busybox",
            "script": "echo",
            "labels": {"team": "imaging"},
            "environment": {"secrets": {"TOKEN": "s3cr3t"}},
        }
    )
    form = ServiceForm.of(stored)
    assert "s3cr3t" not in form.secrets and form.secrets == "TOKEN=\n"
    form.memory = "1Gi"
    edited = parse_service(form.definition(stored))
    assert edited.labels == {"team": "imaging"}
    assert edited.memory == "1Gi"
    assert edited.environment.secrets == {"TOKEN": ""}  # blank: the registry keeps the stored


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("variables", "no equals sign", "environment variables, line 1: write NAME=value"),
        ("max_concurrency", "many", "max concurrency: 'many' is not a whole number"),
        ("timeout", "soon", "timeout: 'soon' is not a number"),
    ],
)
def test_a_malformed_field_is_named(field: str, value: str, message: str) -> None:
    form = ServiceForm(name="grey", image="busybox", script="echo")
    setattr(form, field, value)
    with pytest.raises(ValueError, match=message):
        form.definition()
