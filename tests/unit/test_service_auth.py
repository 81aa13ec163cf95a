"""`service_caller`, the check of the engine's `/job` and `/run` routes, over HTTP."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from oscarpy.api.auth import install_throttle, service_caller
from oscarpy.api.errors import install_error_handlers
from oscarpy.auth.credentials import AdminCredentials
from oscarpy.config import Settings
from oscarpy.db import Database
from oscarpy.services.model import parse_service
from oscarpy.services.registry import ServiceRegistry
from oscarpy.storage.store import ObjectStore
from tests.support.server import free_port

ADMIN = AdminCredentials("oscar", "admin-password", generated=False)


@pytest.fixture
def app_and_tokens(tmp_path: Path) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    database = Database(f"sqlite:///{tmp_path / 'state.db'}")
    database.migrate()
    registry = ServiceRegistry(database, ObjectStore(database, tmp_path))
    tokens = {
        name: registry.create(
            parse_service({"name": name, "image": "busybox", "script": "echo"})
        ).token
        for name in ("first", "second")
    }
    app = FastAPI()
    app.state.admin = ADMIN
    install_throttle(app, Settings(signin_free_failures=1000000), database)
    app.state.registry = registry
    install_error_handlers(app)

    @app.post("/job/{service_name}")
    def job(request: Request, service_name: str) -> dict[str, str]:
        service_caller(request, service_name)
        return {"accepted": service_name}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        yield client, tokens
    server.should_exit = True
    thread.join()
    database.close()


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_own_token_and_admin_pass(app_and_tokens: tuple[httpx.Client, dict[str, str]]) -> None:
    client, tokens = app_and_tokens
    own = client.post("/job/first", headers={"Authorization": f"Bearer {tokens['first']}"})
    assert own.status_code == 200
    admin = client.post("/job/second", headers={"Authorization": basic("oscar", "admin-password")})
    assert admin.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer {second}",  # another service's token
        "Bearer {first}x",
        "Bearer",  # no token at all
        "bearer-ish {first}",
        "Basic b3NjYXI6d3Jvbmc=",  # oscar:wrong
    ],
)
def test_everything_else_is_401_with_both_challenges(
    app_and_tokens: tuple[httpx.Client, dict[str, str]], authorization: str | None
) -> None:
    client, tokens = app_and_tokens
    headers = {"Authorization": authorization.format(**tokens)} if authorization else {}
    answer = client.post("/job/first", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Basic realm="oscar", Bearer realm="oscar"'
    assert answer.text == "Invalid or missing credentials"


def test_a_token_for_an_absent_or_impossible_service_is_401(
    app_and_tokens: tuple[httpx.Client, dict[str, str]],
) -> None:
    client, tokens = app_and_tokens
    headers = {"Authorization": f"Bearer {tokens['first']}"}
    assert client.post("/job/absent", headers=headers).status_code == 401
    assert client.post("/job/Not_A_Name", headers=headers).status_code == 401
