"""The one exception → HTTP status table (`oscarpy/errors.py`): complete, drawn truly, and used
alike by the REST API, the dashboard and (through S3 codes) the S3 edge."""

from __future__ import annotations

import errno
import importlib
import pkgutil
import re
from collections.abc import Iterator

import anyio
import httpx
import pytest
from fastapi import APIRouter, FastAPI

import oscarpy
from oscarpy import errors
from oscarpy.api.errors import install_error_handlers
from oscarpy.errors import DOMAIN_ERRORS, STATUS, status_of
from oscarpy.s3 import errors as s3_errors
from oscarpy.storage.errors import StorageError
from oscarpy.web.dashboard import DashboardRoute


def _every_module() -> Iterator[str]:
    for module in pkgutil.walk_packages(oscarpy.__path__, "oscarpy."):
        # Alembic's environment runs migrations when imported, a `__main__` would run the CLI;
        # neither defines an exception.
        if not module.name.startswith("oscarpy.migrations") and not module.name.endswith(
            "__main__"
        ):
            yield module.name


def _subclasses(root: type[Exception]) -> set[type[Exception]]:
    found = {root}
    for child in root.__subclasses__():
        found |= _subclasses(child)
    return found


def _domain_classes() -> set[type[Exception]]:
    for name in _every_module():
        importlib.import_module(name)
    return {
        kind
        for root in DOMAIN_ERRORS
        for kind in _subclasses(root)
        if kind.__module__.startswith("oscarpy.")
    }


def test_every_domain_exception_class_has_a_row_of_its_own() -> None:
    classes = _domain_classes()

    missing = sorted(f"{kind.__module__}.{kind.__name__}" for kind in classes - set(STATUS))
    assert not missing, f"add these to oscarpy/errors.py's STATUS (and its drawing): {missing}"
    assert set(STATUS) == classes, "STATUS names a class that no longer exists"
    for kind in classes:
        roots = [root for root in DOMAIN_ERRORS if issubclass(kind, root)]
        assert len(roots) == 1, f"{kind.__name__} is in several trees: {roots}"


def test_the_docstring_draws_the_table() -> None:
    assert errors.__doc__ is not None
    drawn = {
        found.group(1): int(found.group(2))
        for line in errors.__doc__.splitlines()
        if (found := re.match(r"^ {4}[│├└─ ]*([A-Z]\w+) .* (\d{3})$", line))
    }

    assert drawn == {kind.__name__: status for kind, status in STATUS.items()}


def test_a_full_disk_is_507_whatever_the_class() -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    try:
        raise StorageError("cannot commit the object") from full
    except StorageError as error:
        assert status_of(error) == 507
    assert status_of(full) == 507
    assert status_of(RuntimeError("something else")) == 500


def test_a_class_without_a_row_takes_its_nearest_ancestors_status() -> None:
    class Unlisted(StorageError):
        pass

    assert status_of(Unlisted("x")) == STATUS[StorageError]


def test_each_storage_class_has_an_s3_code_whose_status_is_the_tables() -> None:
    storage_classes = {kind for kind in _domain_classes() if issubclass(kind, StorageError)}

    assert set(s3_errors.CODE_OF) == storage_classes
    for kind in storage_classes - {StorageError}:
        code = s3_errors.CODE_OF[kind]
        assert s3_errors.STATUS[code] == STATUS[kind], (kind.__name__, code)
    # Behind the S3 edge the storage is the server itself: its bare failure is not a gateway's.
    assert s3_errors.from_store_error(StorageError("disk gone")).code == "InternalError"


def test_the_s3_code_of_an_invalid_key_follows_its_class_not_its_message() -> None:
    from oscarpy.storage.errors import InvalidObjectKey, ObjectKeyTooLong

    # The messages say the opposite of the classes: only the class may decide.
    assert s3_errors.from_store_error(ObjectKeyTooLong("bad key")).code == "KeyTooLongError"
    assert s3_errors.from_store_error(InvalidObjectKey("key longer")).code == "InvalidArgument"


class InProcess:
    """A client of an ASGI app in this process (no socket)."""

    def __init__(self, app: FastAPI) -> None:
        self.transport = httpx.ASGITransport(app, raise_app_exceptions=False)

    def get(self, path: str) -> httpx.Response:
        async def fetch() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url="http://t") as client:
                return await client.get(path)

        return anyio.run(fetch)


@pytest.fixture(scope="module")
def client() -> InProcess:
    """The REST API's error handlers and the dashboard's route class, each over a route that
    raises the exception class it is named."""
    by_name = {kind.__name__: kind for kind in STATUS}
    app = FastAPI()
    install_error_handlers(app)

    def raise_named(name: str) -> None:
        if name == "DiskFull":
            raise StorageError("cannot commit") from OSError(errno.ENOSPC, "disk full")
        raise by_name[name](f"a {name}")

    @app.get("/api/raise/{name}")
    def api_route(name: str) -> None:
        raise_named(name)

    @app.get("/api/page")
    def api_page(offset: int) -> int:
        return offset

    dashboard = APIRouter(route_class=DashboardRoute)

    @dashboard.get("/ui/data/raise/{name}")
    def dashboard_route(name: str) -> None:
        raise_named(name)

    @dashboard.get("/ui/data/page")
    def dashboard_page(offset: int) -> int:
        return offset

    app.include_router(dashboard)
    return InProcess(app)


@pytest.mark.parametrize("kind", list(STATUS), ids=lambda kind: kind.__name__)
def test_rest_api_and_dashboard_answer_each_class_with_its_status(
    client: InProcess, kind: type[Exception]
) -> None:
    api = client.get(f"/api/raise/{kind.__name__}")
    dashboard = client.get(f"/ui/data/raise/{kind.__name__}")

    assert (api.status_code, dashboard.status_code) == (STATUS[kind], STATUS[kind])
    assert api.text and dashboard.json()["detail"]


def test_rest_api_and_dashboard_agree_on_a_full_disk_and_a_bad_parameter(
    client: InProcess,
) -> None:
    assert client.get("/api/raise/DiskFull").status_code == 507
    assert client.get("/ui/data/raise/DiskFull").status_code == 507
    assert client.get("/api/page?offset=first").status_code == 400
    assert client.get("/ui/data/page?offset=first").status_code == 400
