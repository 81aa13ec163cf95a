"""Password guessing is throttled everywhere the admin's password is checked (HTTP Basic on the
REST API, the dashboard's sign-in form, S3 signatures), per client address and per user, with
a wait that doubles per failure; an attempt made before its wait is over is refused without
checking the password, so that guessing in parallel gains nothing. Each failure is logged once
with the client's address. (The code before accepted about 2,000 guesses a second, silently.)"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

from oscarpy.db import Database
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.serial  # waits of seconds: measured alone

FREE = 3
GUESSES = 40
DELAY = 30  # seconds: longer than the test, so that every guess past the free ones is refused


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    env = {
        "OSCAR_RUNTIME": "process",
        "OSCAR_SIGNIN_FREE_FAILURES": str(FREE),
        "OSCAR_SIGNIN_DELAY": str(DELAY),
    }
    running = start_server(tmp_path / "data", env=env)
    yield running
    running.stop()


def _in_parallel(attempt: object, count: int) -> list[int]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _: attempt(), range(count)))  # type: ignore[operator]


def _retry_after(answer: httpx.Response) -> int:
    assert answer.status_code == 429, answer.text
    return int(answer.headers["retry-after"])


def test_basic_guesses_are_throttled(server: RunningServer) -> None:
    def guess() -> int:
        return httpx.get(
            f"{server.url}/system/info", auth=("oscar", "guess"), timeout=30
        ).status_code

    statuses = _in_parallel(guess, GUESSES)
    assert (statuses.count(401), statuses.count(429)) == (FREE, GUESSES - FREE), statuses
    # Even the right password waits its turn: the guesser learns nothing from it.
    refused = httpx.get(f"{server.url}/system/info", auth=server.auth, timeout=30)
    assert DELAY - 10 <= _retry_after(refused) <= DELAY
    # Another user name from the same address waits too; a service token is not a password.
    other = httpx.get(f"{server.url}/system/info", auth=("root", "x"), timeout=30)
    assert other.status_code == 429
    failures = [line for line in server.log().splitlines() if "sign-in failed" in line]
    assert len(failures) == statuses.count(401)
    assert all("127.0.0.1" in line and "REST API" in line for line in failures)


def test_dashboard_guesses_are_throttled(server: RunningServer) -> None:
    def guess() -> int:
        form = {"username": "oscar", "password": "guess"}
        return httpx.post(f"{server.url}/ui/login", data=form, timeout=30).status_code

    statuses = _in_parallel(guess, GUESSES)
    assert (statuses.count(401), statuses.count(429)) == (FREE, GUESSES - FREE), statuses
    form = {"username": server.username, "password": server.password}
    refused = httpx.post(f"{server.url}/ui/login", data=form)
    assert _retry_after(refused) > 0 and "oscar_session" not in refused.headers.get(
        "set-cookie", ""
    )
    assert "Too many failed sign-ins" in refused.text
    assert "sign-in failed (dashboard) for user 'oscar' from 127.0.0.1" in server.log()


def test_s3_guesses_are_throttled_and_count_with_the_others(server: RunningServer) -> None:
    wrong = boto3.client(
        "s3",
        endpoint_url=server.s3_url,
        aws_access_key_id=server.username,
        aws_secret_access_key="guess",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )

    def guess() -> int:
        try:
            wrong.list_buckets()
        except wrong.exceptions.ClientError as error:
            return int(error.response["ResponseMetadata"]["HTTPStatusCode"])
        return 200

    statuses = _in_parallel(guess, GUESSES)
    assert (statuses.count(403), statuses.count(503)) == (FREE, GUESSES - FREE), statuses
    # The same address is now held on the REST port too: the counts are shared.
    assert _retry_after(httpx.get(f"{server.url}/system/info", auth=server.auth)) > 0
    assert "sign-in failed (S3) for user 'oscar' from 127.0.0.1" in server.log()


def test_the_wait_doubles_per_failure_and_a_success_clears_it(database: Database) -> None:
    """The schedule itself, on a clock the test moves (a minute of waits in no time)."""
    from oscarpy.auth import throttle as module

    now = [1000.0]
    throttle = module.Throttle(
        database, free_failures=2, base_delay=1, max_delay=8, clock=lambda: now[0]
    )

    def attempt(address: str, right: bool) -> bool | float:
        try:
            return throttle.attempt(address, "oscar", "test", lambda: right)
        except module.Throttled as throttled:
            return throttled.retry_after

    assert [attempt("a", False), attempt("a", False)] == [False, False]
    assert attempt("a", True) == 1  # the third attempt waits 1 s, right or wrong
    waits = []
    for _ in range(5):
        now[0] += float(attempt("a", True))  # wait it out, then fail again
        assert attempt("a", False) is False
        waits.append(attempt("a", True))
    assert waits == [2, 4, 8, 8, 8]  # doubling, up to the maximum
    assert attempt("b", True) == 8  # the user is held from another address too
    now[0] += 8
    assert attempt("a", True) is True  # a success clears both counts
    assert attempt("a", False) is False and attempt("b", False) is False
