"""Server instances on SQLite and PostgreSQL: leases decide who is alive, and one survivor
cleans up after each dead instance."""

from __future__ import annotations

import threading
import time

import pytest

from oscarpy.db import Database
from oscarpy.instances import Instances, LeaseLost

pytestmark = pytest.mark.serial  # leases of half a second: alone, a late wake-up is not a miss


def test_an_instance_is_alive_while_its_lease_runs(database: Database) -> None:
    first = Instances(database, lease_seconds=0.5)
    first.register()
    second = Instances(database, lease_seconds=30)
    if database.dialect == "postgresql":
        second.register()  # on SQLite, registering ends every other instance
        assert second.is_alive(first.id)
    time.sleep(0.6)

    assert not second.is_alive(first.id)
    assert not second.is_alive("a-name/that-never/registered")
    assert second.is_alive(second.id)
    with pytest.raises(LeaseLost):
        first.renew()  # expired: it must not go on


def test_a_renewed_lease_keeps_its_instance_alive(database: Database) -> None:
    living = Instances(database, lease_seconds=0.6)
    living.register()
    observer = Instances(database, lease_seconds=30)
    for _ in range(4):
        time.sleep(0.2)
        living.renew()
        assert observer.is_alive(living.id)
    assert living.token in observer.live_tokens()
    living.stop()
    assert not observer.is_alive(living.id)  # a stopped instance gives its lease up at once


def test_one_survivor_cleans_up_after_each_dead_instance(database: Database) -> None:
    if database.dialect == "sqlite":
        pytest.skip("SQLite serves one process: there are no concurrent survivors")
    dead = Instances(database, lease_seconds=0.1)
    dead.register()
    survivors = [Instances(database, lease_seconds=30) for _ in range(3)]
    for survivor in survivors:
        survivor.register()
    time.sleep(0.2)
    cleaned: list[str] = []

    def clean(instance_id: str) -> None:
        time.sleep(0.3)  # long enough for every survivor to reach the row
        cleaned.append(instance_id)

    threads = [threading.Thread(target=survivor.reap, args=(clean,)) for survivor in survivors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert cleaned == [dead.id]
    assert survivors[0].reap(clean) == []  # its row is gone
