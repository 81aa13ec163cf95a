"""Sign-in throttling is shared by every server process on one state DB, and survives a restart.

The attack: with the failure counts kept in each process, N `oscar serve` processes on one
PostgreSQL gave a guesser N times the free failures and N wait schedules, and a restart forgot
them all. The counts are now rows of the state DB (auth/throttle.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from oscarpy.auth.throttle import SigninFailure, Throttle, Throttled
from oscarpy.db import Database
from tests.conftest import require_service
from tests.support.databases import fresh_postgres_database, postgres_reachable
from tests.support.server import RunningServer, start_server

FREE = 2
DELAY = 300  # seconds: far longer than the test, however loaded the machine


def _throttle(database: Database, now: list[float]) -> Throttle:
    """A throttle as one server process has it, on a clock the test moves."""
    return Throttle(database, free_failures=FREE, base_delay=10, max_delay=80, clock=lambda: now[0])


def _rows(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(SigninFailure)) or 0)


def test_a_new_process_inherits_the_counts_and_waits(database: Database) -> None:
    now = [1000.0]
    first = _throttle(database, now)
    for _ in range(FREE):
        assert first.attempt("10.0.0.1", "oscar", "test", lambda: False) is False

    restarted = _throttle(database, now)  # another process, or this one after a restart
    checked: list[str] = []

    def right_password() -> bool:
        checked.append("checked")
        return True

    with pytest.raises(Throttled) as throttled:
        restarted.attempt("10.0.0.2", "oscar", "test", right_password)
    assert throttled.value.retry_after == 10 and not checked  # refused without checking
    now[0] += 10
    assert restarted.attempt("10.0.0.2", "oscar", "test", lambda: False) is False
    with pytest.raises(Throttled) as doubled:
        first.attempt("10.0.0.1", "oscar", "test", lambda: True)
    assert doubled.value.retry_after == 20  # the second process's failure doubled it for both
    now[0] += 20
    assert first.attempt("10.0.0.1", "oscar", "test", lambda: True) is True
    assert _rows(database) == 1  # the success cleared its address and the user, not 10.0.0.2


def test_a_success_writes_nothing_where_nothing_was_counted(database: Database) -> None:
    now = [1000.0]
    throttle = _throttle(database, now)
    with database.session() as session:
        session.add(SigninFailure(key="user other", failures=1, blocked_until=0, expires_at=9e9))
    assert throttle.attempt("10.0.0.1", "oscar", "test", lambda: True) is True
    assert _rows(database) == 1


def test_a_pair_just_found_clear_skips_the_read_for_a_second(database: Database) -> None:
    """The throttle's cost kept off the success path, and what it leaves open: a wait another
    process starts reaches a pair that has just signed in here within a second; a wrong guess
    here ends the skipping at once."""
    now = [1000.0]
    here, elsewhere = _throttle(database, now), _throttle(database, now)
    assert here.attempt("10.0.0.1", "oscar", "test", lambda: True) is True
    for _ in range(FREE):
        assert elsewhere.attempt("10.0.0.2", "oscar", "test", lambda: False) is False

    assert here.attempt("10.0.0.1", "oscar", "test", lambda: True) is True  # read skipped
    now[0] += 1
    with pytest.raises(Throttled):  # read again: the user is held
        here.attempt("10.0.0.1", "oscar", "test", lambda: True)

    now[0] += 100  # past the waits; a new pair, found clear
    assert here.attempt("10.0.0.3", "root", "test", lambda: True) is True
    assert here.attempt("10.0.0.3", "guess", "test", lambda: False) is False
    for _ in range(FREE):
        elsewhere.attempt("10.0.0.4", "root", "test", lambda: False)
    with pytest.raises(Throttled):  # the failure from 10.0.0.3 here ended the skipping
        here.attempt("10.0.0.3", "root", "test", lambda: True)


def test_forgotten_counts_are_swept_by_the_next_failure(database: Database) -> None:
    now = [1000.0]
    throttle = _throttle(database, now)
    for _ in range(FREE + 1):  # the last one starts no wait of its own: it is refused
        try:
            throttle.attempt("10.0.0.1", "mallory", "test", lambda: False)
        except Throttled:
            pass
    assert _rows(database) == 2
    now[0] += 3601  # an hour idle, long past the 20 s wait
    assert throttle.attempt("10.0.0.9", "eve", "test", lambda: False) is False
    assert _rows(database) == 2  # mallory's and 10.0.0.1's rows went; eve's and 10.0.0.9's came
    assert throttle.attempt("10.0.0.1", "mallory", "test", lambda: False) is False  # count 1


def test_a_failure_another_process_counted_during_the_check_is_not_counted_past_the_wait(
    database: Database,
) -> None:
    """Two processes check a guess each at the same moment, with one free failure left: the
    first to write counts and starts the wait; the second is refused as throttled."""
    now = [1000.0]
    processes = [_throttle(database, now), _throttle(database, now)]
    assert processes[0].attempt("10.0.0.1", "oscar", "test", lambda: False) is False
    both_checking = threading.Barrier(2)

    def guess(process: Throttle) -> str:
        def check() -> bool:
            both_checking.wait(10)
            return False

        try:
            return str(process.attempt("10.0.0.1", "oscar", "test", check))
        except Throttled:
            return "throttled"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(guess, processes))
    assert outcomes == ["False", "throttled"]
    with pytest.raises(Throttled) as throttled:
        processes[1].attempt("10.0.0.1", "oscar", "test", lambda: True)
    assert throttled.value.retry_after == 10  # one wait, from the second failure: not doubled


# --- two real `oscar serve` processes on one PostgreSQL ------------------------------------


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningServer]]:
    reachable, reason = postgres_reachable()
    require_service(reachable, reason)
    root = tmp_path_factory.mktemp("throttle-shared")
    with fresh_postgres_database() as url:
        env = {
            "OSCAR_DATABASE_URL": url,
            "OSCAR_PASSWORD": "shared-throttle-secret",
            "OSCAR_RUNTIME": "process",
            "OSCAR_SIGNIN_FREE_FAILURES": str(FREE),
            "OSCAR_SIGNIN_DELAY": str(DELAY),
            "OSCAR_SIGNIN_MAX_DELAY": str(DELAY),
        }
        # Migrated first: two processes that migrate one new database at once collide.
        migrated = Database(url)
        migrated.migrate()
        migrated.close()
        with ThreadPoolExecutor(2) as pool:
            servers = list(
                pool.map(
                    lambda name: start_server(root / "data", env=env, log_name=name), ["a", "b"]
                )
            )
        try:
            yield servers
        finally:
            for server in servers:
                server.stop()


def _from(address: str) -> httpx.Client:
    """A client whose connections come from `address` (any 127.0.0.0/8 address is this host's
    loopback): each test holds its own address, since a held one stays held past the test."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


@pytest.mark.postgres
def test_failures_against_one_process_delay_sign_ins_on_the_other(
    two_servers: list[RunningServer],
) -> None:
    first, second = two_servers
    with _from("127.0.0.5") as client:  # both work (another address: see the next test)
        for server in two_servers:
            assert client.get(f"{server.url}/system/info", auth=server.auth).status_code == 200
    with _from("127.0.0.3") as client:
        guesses = [
            client.get(f"{first.url}/system/info", auth=("oscar", f"guess-{n}")).status_code
            for n in range(FREE + 1)
        ]
        assert guesses == [401] * FREE + [429]

        # The other process now refuses the right password too, unchecked, on all three doors
        # (S3 from another address: the user is held wherever it signs in from).
        rest = client.get(f"{second.url}/system/info", auth=second.auth)
        form = {"username": second.username, "password": second.password}
        dashboard = client.post(f"{second.url}/ui/login", data=form)
    assert rest.status_code == 429 and DELAY - 60 <= int(rest.headers["retry-after"]) <= DELAY
    assert dashboard.status_code == 429
    assert "oscar_session" not in dashboard.headers.get("set-cookie", "")
    s3 = second.s3_client(retries={"max_attempts": 1})
    with pytest.raises(s3.exceptions.ClientError) as refused:
        s3.list_buckets()
    assert refused.value.response["Error"]["Code"] == "SlowDown"
    assert "sign-in failed" not in second.log()
    assert first.log().count("sign-in failed (REST API) for user 'oscar' from 127.0.0.3") == FREE


@pytest.mark.postgres
def test_an_address_held_by_one_process_is_held_by_the_other_for_any_user(
    two_servers: list[RunningServer],
) -> None:
    """Guessing many user names from one address: the processes count them together."""
    first, second = two_servers
    with _from("127.0.0.4") as client:
        statuses = [
            client.get(f"{server.url}/system/info", auth=(f"user-{n}", "guess")).status_code
            for n, server in enumerate([first, second, first, second])
        ]
    assert statuses[:FREE] == [401] * FREE and set(statuses[FREE:]) == {429}
