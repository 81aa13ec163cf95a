"""The machines jobs run on, as `/system/status`, `/metrics` and the dashboard show them.

A local runtime (`docker`, `process`) runs every job on this machine: one node. A cluster
runtime (`swarm`) reports each node of its cluster with what Swarm knows of it: its CPUs and
memory, what the tasks placed there reserve, and its state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class NodeStatus:
    """One machine that runs jobs, and how much of it they hold now."""

    name: str
    cpu_cores: float
    memory_bytes: int
    cpu_reserved: float = 0.0
    """Cores reserved by the jobs (tasks) running there, from their services' `cpu`."""
    memory_reserved: int = 0
    jobs_running: int = 0
    state: str = "ready"
    """`ready`, `down`, `disconnected` or `unknown` (Swarm's node states)."""
    availability: str = "active"
    """`active` (takes new jobs), `drain` (being emptied) or `pause`."""
    labels: Mapping[str, str] = field(default_factory=dict)
    node_id: str = ""
    """The cluster's own id of the node (empty for this machine in local mode)."""
    manager: bool = False
    """A Swarm manager (never removed by the scaler: it runs `oscar serve`)."""

    @property
    def cpu_free(self) -> float:
        return max(0.0, self.cpu_cores - self.cpu_reserved)

    @property
    def memory_free(self) -> int:
        return max(0, self.memory_bytes - self.memory_reserved)

    @property
    def ready(self) -> bool:
        return self.state == "ready"


@runtime_checkable
class ClusterRuntime(Protocol):
    """A runtime whose jobs run on the nodes of a cluster rather than on this machine."""

    def nodes(self) -> list[NodeStatus]:
        """Every node of the cluster, as last seen."""
        ...
