"""The scaler's decisions against a cluster and a provider held in memory (`FakeCluster`,
`RecordingProvider`: test doubles of `ScalableCluster` and `NodeProvider`), with a clock the
test moves. The real thing, on a real swarm: tests/reliability/test_swarm_scaling.py."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pytest

from oscarpy.engine.errors import ScalingError
from oscarpy.engine.nodes import NodeStatus
from oscarpy.engine.scaler import (
    CommandProvider,
    PendingTask,
    Scaler,
    ScalingPolicy,
    node_labels,
    scaler_from_environment,
)

GIB = 2**30


@dataclass
class FakeCluster:
    nodes_now: list[NodeStatus] = field(default_factory=list)
    pending: list[PendingTask] = field(default_factory=list)
    drained: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    labelled: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def nodes(self) -> list[NodeStatus]:
        return list(self.nodes_now)

    def pending_tasks(self) -> list[PendingTask]:
        return list(self.pending)

    def drain_node(self, node_id: str) -> None:
        self.drained.append(node_id)
        self.nodes_now = [
            replace(node, availability="drain") if node.node_id == node_id else node
            for node in self.nodes_now
        ]

    def label_node(self, node_id: str, labels: Mapping[str, str]) -> None:
        self.labelled.append((node_id, dict(labels)))
        self.nodes_now = [
            replace(node, labels={**node.labels, **labels}) if node.node_id == node_id else node
            for node in self.nodes_now
        ]

    def remove_node(self, node_id: str) -> None:
        self.removed.append(node_id)
        self.nodes_now = [node for node in self.nodes_now if node.node_id != node_id]


@dataclass
class RecordingProvider:
    name: str = "recording"
    added: list[int] = field(default_factory=list)
    shut_down: list[str] = field(default_factory=list)
    fail: bool = False

    def add_nodes(self, count: int) -> None:
        if self.fail:
            raise ScalingError("the cloud said no")
        self.added.append(count)

    def remove_node(self, node: NodeStatus) -> None:
        self.shut_down.append(node.name)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def node(name: str, *, manager: bool = False, jobs: int = 0) -> NodeStatus:
    return NodeStatus(
        name, 2.0, 4 * GIB, cpu_reserved=float(jobs), jobs_running=jobs, node_id=f"id-{name}",
        manager=manager,
    )  # fmt: skip


def scaler(cluster: FakeCluster, provider: RecordingProvider, clock: Clock) -> Scaler:
    policy = ScalingPolicy(
        min_nodes=1, max_nodes=3, pending_seconds=10, idle_seconds=60, cooldown_seconds=30
    )
    return Scaler(cluster, provider, policy, clock)


def test_jobs_waiting_past_the_threshold_add_the_nodes_their_reservations_need() -> None:
    clock, provider = Clock(), RecordingProvider()
    cluster = FakeCluster([node("manager", manager=True, jobs=2)])
    cluster.pending = [PendingTask(clock.now, 1.0, 32 * 2**20) for _ in range(3)]
    elastic = scaler(cluster, provider, clock)

    elastic.tick()
    assert provider.added == []  # not waiting long enough yet
    clock.now += 10
    elastic.tick()
    assert provider.added == [2]  # 3 cores of demand on 2-core nodes
    clock.now += 5
    elastic.tick()
    assert provider.added == [2]  # cooling down while they join
    cluster.nodes_now += [node("w1", jobs=2), node("w2", jobs=1)]
    clock.now += 30
    elastic.tick()
    assert provider.added == [2]  # at the maximum: 3 nodes
    assert [event.action for event in elastic.events] == ["add"]


def test_idle_workers_are_drained_then_removed_down_to_the_minimum_never_the_manager() -> None:
    clock, provider = Clock(), RecordingProvider()
    cluster = FakeCluster([node("manager", manager=True), node("w1"), node("w2", jobs=1)])
    elastic = scaler(cluster, provider, clock)

    elastic.tick()
    clock.now += 59
    elastic.tick()
    assert cluster.drained == []
    clock.now += 1
    elastic.tick()
    assert cluster.drained == ["id-w1"]  # w2 runs a job; the manager stays
    elastic.tick()
    assert provider.shut_down == ["w1"] and cluster.removed == ["id-w1"]
    cluster.nodes_now = [node("manager", manager=True), node("w2")]  # its job ended
    for _ in range(3):
        clock.now += 61
        elastic.tick()
    assert cluster.removed == ["id-w1", "id-w2"]
    assert [event.action for event in elastic.events] == ["drain", "remove", "drain", "remove"]


def test_waiting_jobs_keep_idle_nodes_and_a_refusal_is_recorded() -> None:
    clock, provider = Clock(), RecordingProvider(fail=True)
    cluster = FakeCluster([node("manager", manager=True), node("w1")])
    cluster.pending = [PendingTask(clock.now, 4.0, GIB)]
    elastic = scaler(cluster, provider, clock)

    clock.now += 100
    elastic.tick()

    assert cluster.drained == []
    assert [(event.action, "the cloud said no" in event.detail) for event in elastic.events] == [
        ("failed", True)
    ]


def test_nodes_the_scaler_added_get_the_labels_placement_needs_and_no_other_node_does() -> None:
    clock, provider = Clock(), RecordingProvider()
    cluster = FakeCluster([node("manager", manager=True, jobs=2), node("admins", jobs=2)])
    cluster.pending = [PendingTask(clock.now, 1.0, 0)]
    policy = ScalingPolicy(max_nodes=4, pending_seconds=0, node_labels={"gpu": "true"})
    elastic = Scaler(cluster, provider, policy, clock)

    elastic.tick()
    assert provider.added == [1]
    elastic.tick()
    assert cluster.labelled == []  # not joined yet
    cluster.nodes_now.append(node("new", jobs=1))
    elastic.tick()
    assert cluster.labelled == [("id-new", {"gpu": "true"})]
    cluster.nodes_now.append(node("someone-elses", jobs=1))  # joined by hand: left alone
    elastic.tick()
    assert cluster.labelled == [("id-new", {"gpu": "true"})]
    assert [event.action for event in elastic.events] == ["add", "label"]
    assert "node new joined: labels gpu=true" in elastic.events[1].detail


def test_node_labels_setting_is_parsed_and_checked() -> None:
    assert node_labels("gpu=true, zone=b") == {"gpu": "true", "zone": "b"}
    assert node_labels("") == {}
    environ = {"OSCAR_SCALER_NODE_LABELS": "gpu=true zone=b"}
    assert ScalingPolicy.from_environment(environ).node_labels == {"gpu": "true", "zone": "b"}
    with pytest.raises(ValueError, match="OSCAR_SCALER_NODE_LABELS: 'gpu' is not name=value"):
        node_labels("gpu")


def test_bad_settings_are_refused_with_the_variable_to_fix() -> None:
    with pytest.raises(ValueError, match="OSCAR_SCALER_MAX_NODES"):
        ScalingPolicy(min_nodes=3, max_nodes=2)
    with pytest.raises(ValueError, match="OSCAR_SCALER_UP"):
        scaler_from_environment(FakeCluster(), {"OSCAR_SCALER": "command"})
    with pytest.raises(ValueError, match="unknown node provider 'cloud9'"):
        scaler_from_environment(FakeCluster(), {"OSCAR_SCALER": "cloud9"})
    with pytest.raises(ValueError, match="cluster mode"):
        scaler_from_environment(object(), {"OSCAR_SCALER": "command"})
    assert scaler_from_environment(object(), {}) is None


def test_the_command_provider_passes_the_count_and_the_node_and_quotes_a_failure() -> None:
    echo = [sys.executable, "-c", "import sys; sys.exit(sys.argv[1] != '2')"]
    provider = CommandProvider(
        echo, [sys.executable, "-c", "import sys; sys.exit('gone: ' + sys.argv[2])"]
    )

    provider.add_nodes(2)
    with pytest.raises(ScalingError, match="exited with 1"):
        provider.add_nodes(3)
    with pytest.raises(ScalingError, match="gone: w1"):
        provider.remove_node(node("w1"))
