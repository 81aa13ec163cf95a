"""Elasticity in cluster mode: nodes are added while jobs wait for room, and removed when idle.

The scaler compares pending demand with capacity, as CLUES does for OSCAR. Demand is the Swarm
tasks that no node has room for (their reservations fit nowhere) for longer than
`pending_seconds`; when there are some, it asks its *node provider* for as many nodes as their
reservations need (within `max_nodes`), then waits `cooldown_seconds` before asking again. A
worker node that has run nothing for `idle_seconds` while nothing waits is drained
(`docker node update --availability drain`), handed to the provider to shut down, and removed
from the swarm, never below `min_nodes`. Manager nodes are never removed. Nodes that join after
the scaler asked for them get the policy's `node_labels` (`docker node update --label-add`), so
that jobs whose placement constraints need those labels can run there.

Providers are plug-ins (`NodeProvider`): `command` runs a site's own programs, with the number
of nodes to add or the node to remove (the hook to a cloud's API or the Infrastructure
Manager); others are found under the `oscarpy.node_providers` entry point group. Every decision
is logged and kept (`Scaler.events`) for the dashboard.

Settings (environment, read at start): `OSCAR_SCALER` (the provider; empty: no scaler),
`OSCAR_SCALER_UP` / `OSCAR_SCALER_DOWN` (the `command` provider's programs),
`OSCAR_SCALER_MIN_NODES`, `OSCAR_SCALER_MAX_NODES`, `OSCAR_SCALER_PENDING_SECONDS`,
`OSCAR_SCALER_IDLE_SECONDS`, `OSCAR_SCALER_COOLDOWN_SECONDS`, `OSCAR_SCALER_NODE_LABELS`. See
docs/cluster.md.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from oscarpy.db import utcnow
from oscarpy.engine.errors import InfrastructureError, ScalingError
from oscarpy.engine.nodes import NodeStatus

log = logging.getLogger(__name__)

_TICK_SECONDS = 1.0
_EVENTS_KEPT = 200
_PROVIDER_TIMEOUT = 900.0
"""How long a provider's program may take (starting a cloud machine takes minutes)."""


@dataclass(frozen=True)
class PendingTask:
    """A task no node has room for yet, and since when (`time.monotonic()`)."""

    since: float
    cpu: float
    memory: int


@runtime_checkable
class ScalableCluster(Protocol):
    """What the scaler needs of a cluster runtime (`SwarmRuntime`)."""

    def nodes(self) -> list[NodeStatus]: ...

    def pending_tasks(self) -> list[PendingTask]: ...

    def drain_node(self, node_id: str) -> None: ...

    def label_node(self, node_id: str, labels: Mapping[str, str]) -> None:
        """Add `labels` to the node's own (`docker node update --label-add`)."""
        ...

    def remove_node(self, node_id: str) -> None:
        """Forget a node that left (or was shut down): `docker node rm --force`."""
        ...


class NodeProvider(Protocol):
    """Makes machines join the cluster and shuts them down."""

    name: str

    def add_nodes(self, count: int) -> None:
        """Start `count` machines that join the cluster (returns once asked, or once joined)."""
        ...

    def remove_node(self, node: NodeStatus) -> None:
        """Shut down a drained machine (the scaler then removes it from the cluster)."""
        ...


class CommandProvider:
    """Runs the site's programs: `<up> <count>` to add nodes, `<down> <node id> <hostname>` to
    shut one down. A non-zero exit is a failed step, quoted with the end of what it printed."""

    name = "command"

    def __init__(self, up: Sequence[str], down: Sequence[str]) -> None:
        if not up or not down:
            raise ValueError(
                "the command provider needs both programs: set OSCAR_SCALER_UP and "
                "OSCAR_SCALER_DOWN"
            )
        self.up = list(up)
        self.down = list(down)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> CommandProvider:
        return cls(
            shlex.split(environ.get("OSCAR_SCALER_UP", "")),
            shlex.split(environ.get("OSCAR_SCALER_DOWN", "")),
        )

    def add_nodes(self, count: int) -> None:
        self._run([*self.up, str(count)])

    def remove_node(self, node: NodeStatus) -> None:
        self._run([*self.down, node.node_id, node.name])

    @staticmethod
    def _run(argv: list[str]) -> None:
        try:
            done = subprocess.run(
                argv, capture_output=True, timeout=_PROVIDER_TIMEOUT, check=False, text=True
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ScalingError(f"{argv[0]}: {error}") from error
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip()[-500:]
            raise ScalingError(f"{shlex.join(argv)} exited with {done.returncode}: {said}")


ProviderFactory = Callable[[Mapping[str, str]], NodeProvider]
PROVIDERS: dict[str, ProviderFactory] = {"command": CommandProvider.from_environment}


def provider_named(name: str, environ: Mapping[str, str]) -> NodeProvider:
    """A built-in provider, or one a package registers under `oscarpy.node_providers`."""
    factory = PROVIDERS.get(name)
    if factory is None:
        for entry in entry_points(group="oscarpy.node_providers"):
            if entry.name == name:
                factory = entry.load()
                break
    if factory is None:
        known = ", ".join(sorted(PROVIDERS))
        raise ValueError(f"unknown node provider {name!r} (OSCAR_SCALER): use one of {known}")
    return factory(environ)


@dataclass(frozen=True)
class ScalingPolicy:
    min_nodes: int = 1
    max_nodes: int = 1
    pending_seconds: float = 30.0
    """How long a task waits for room before it counts as demand for a new node."""
    idle_seconds: float = 120.0
    """How long a worker node runs nothing before it is drained and removed."""
    cooldown_seconds: float = 60.0
    """After adding nodes, how long before the next scaling step (the new nodes join)."""
    node_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels every node the scaler adds gets once it has joined (`gpu=true`, `zone=b`)."""

    def __post_init__(self) -> None:
        if self.min_nodes < 1:
            raise ValueError(f"OSCAR_SCALER_MIN_NODES is {self.min_nodes}: it must be at least 1")
        if self.max_nodes < self.min_nodes:
            raise ValueError(
                f"OSCAR_SCALER_MAX_NODES ({self.max_nodes}) is below OSCAR_SCALER_MIN_NODES "
                f"({self.min_nodes})"
            )
        for name in ("pending_seconds", "idle_seconds", "cooldown_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"OSCAR_SCALER_{name.upper()} must not be negative")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ScalingPolicy:
        def number(name: str, default: float) -> float:
            raw = environ.get(f"OSCAR_SCALER_{name}", "").strip()
            try:
                return float(raw) if raw else default
            except ValueError:
                raise ValueError(f"OSCAR_SCALER_{name}={raw!r} is not a number") from None

        return cls(
            min_nodes=int(number("MIN_NODES", 1)),
            max_nodes=int(number("MAX_NODES", 1)),
            pending_seconds=number("PENDING_SECONDS", 30.0),
            idle_seconds=number("IDLE_SECONDS", 120.0),
            cooldown_seconds=number("COOLDOWN_SECONDS", 60.0),
            node_labels=node_labels(environ.get("OSCAR_SCALER_NODE_LABELS", "")),
        )


def node_labels(text: str) -> dict[str, str]:
    """`OSCAR_SCALER_NODE_LABELS`: `name=value` pairs, separated by commas or spaces."""
    labels = {}
    for pair in text.replace(",", " ").split():
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise ValueError(
                f"OSCAR_SCALER_NODE_LABELS: {pair!r} is not name=value (e.g. gpu=true,zone=b)"
            )
        labels[name] = value
    return labels


@dataclass(frozen=True)
class ScalingEvent:
    """One decision of the scaler, as the dashboard lists it."""

    at: datetime
    action: str
    """`add`, `label`, `drain`, `remove`, or `failed`."""
    detail: str


class Scaler:
    """Adds nodes for jobs that wait, drains and removes idle ones; one step at a time."""

    def __init__(
        self,
        cluster: ScalableCluster,
        provider: NodeProvider,
        policy: ScalingPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.provider = provider
        self.policy = policy
        self.clock = clock
        self.events: deque[ScalingEvent] = deque(maxlen=_EVENTS_KEPT)
        self._idle_since: dict[str, float] = {}
        self._draining: set[str] = set()
        self._quiet_until = 0.0
        self._known: set[str] | None = None
        """Nodes seen so far (`None` before the first look): a node not among them joined."""
        self._joining = 0
        """Nodes asked of the provider that have not joined yet: they get `node_labels`."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scaler", daemon=True)

    def start(self) -> None:
        policy = self.policy
        self._record(
            "start",
            f"provider {self.provider.name}, {policy.min_nodes} to {policy.max_nodes} nodes",
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=_PROVIDER_TIMEOUT)

    def _loop(self) -> None:
        while not self._stop.wait(_TICK_SECONDS):
            try:
                self.tick()
            except InfrastructureError as error:
                log.warning("scaler: cannot read the cluster: %s", error)
            except Exception:  # a bug must not stop elasticity for good
                log.exception("scaler: unexpected error")

    def tick(self) -> None:
        """One look at the cluster, and at most one kind of step: remove, add or drain."""
        now = self.clock()
        nodes = self.cluster.nodes()
        self._label_joined(nodes)
        if self._finish_removals(nodes):
            return
        # Nodes that count: not being removed, not dead (a dead node's jobs run elsewhere).
        members = [
            node for node in nodes if node.node_id not in self._draining and node.state != "down"
        ]
        pending = self.cluster.pending_tasks()
        waiting = [task for task in pending if now - task.since >= self.policy.pending_seconds]
        if now < self._quiet_until:
            return
        if waiting:
            self._add(members, waiting, now)
        if pending:
            self._idle_since.clear()  # nodes may be about to get these tasks
        else:
            self._drain_idle(members, now)

    def _label_joined(self, nodes: list[NodeStatus]) -> None:
        """Give the nodes that joined since the scaler asked for them the policy's labels."""
        joined = [
            node for node in nodes if self._known is not None and node.node_id not in self._known
        ]
        self._known = {node.node_id for node in nodes}
        for node in joined:
            if self._joining <= 0:
                return  # joined by someone else: not ours to label
            self._joining -= 1
            wanted = self.policy.node_labels
            if not wanted or all(node.labels.get(k) == v for k, v in wanted.items()):
                continue
            try:
                self.cluster.label_node(node.node_id, wanted)
            except InfrastructureError as error:
                self._record("failed", f"labelling node {node.name}: {error}")
                self._known.discard(node.node_id)  # try again next time
                self._joining += 1
                continue
            shown = ", ".join(f"{k}={v}" for k, v in wanted.items())
            self._record("label", f"node {node.name} joined: labels {shown}")

    def _finish_removals(self, nodes: list[NodeStatus]) -> bool:
        """Drained nodes with nothing left on them: the provider shuts them down, then they
        leave the swarm."""
        removed = False
        for node in nodes:
            if node.node_id not in self._draining or node.jobs_running or node.cpu_reserved:
                continue
            try:
                self.provider.remove_node(node)
                self.cluster.remove_node(node.node_id)
            except (ScalingError, InfrastructureError) as error:
                self._record("failed", f"removing node {node.name}: {error}")
                continue
            self._draining.discard(node.node_id)
            self._record("remove", f"node {node.name} shut down and removed")
            removed = True
        return removed

    def _add(self, members: list[NodeStatus], waiting: list[PendingTask], now: float) -> None:
        room = self.policy.max_nodes - len(members)
        if room <= 0:
            return
        usable = [node for node in members if node.ready and node.availability == "active"]
        node_cpu = max((node.cpu_cores for node in usable), default=1.0) or 1.0
        node_memory = max((node.memory_bytes for node in usable), default=1) or 1
        needed = max(
            1,
            math.ceil(sum(task.cpu for task in waiting) / node_cpu - 1e-9),
            math.ceil(sum(task.memory for task in waiting) / node_memory),
        )
        count = min(room, needed)
        self._quiet_until = now + self.policy.cooldown_seconds
        try:
            self.provider.add_nodes(count)
        except ScalingError as error:
            self._record("failed", f"adding {count} node(s): {error}")
            return
        self._joining += count
        self._record(
            "add",
            f"{count} node(s) for {len(waiting)} job(s) waiting over "
            f"{self.policy.pending_seconds:g} s for room ({len(members)} node(s) before)",
        )
        self._quiet_until = self.clock() + self.policy.cooldown_seconds

    def _drain_idle(self, members: list[NodeStatus], now: float) -> None:
        for node in members:
            busy = node.jobs_running or node.cpu_reserved or node.memory_reserved
            if busy or node.manager or node.availability != "active":
                self._idle_since.pop(node.node_id, None)
            else:
                self._idle_since.setdefault(node.node_id, now)
        spare = len(members) - self.policy.min_nodes
        for node in members:
            since = self._idle_since.get(node.node_id)
            if spare <= 0 or since is None or now - since < self.policy.idle_seconds:
                continue
            try:
                self.cluster.drain_node(node.node_id)
            except InfrastructureError as error:
                self._record("failed", f"draining node {node.name}: {error}")
                continue
            self._draining.add(node.node_id)
            self._idle_since.pop(node.node_id, None)
            spare -= 1
            self._record("drain", f"node {node.name}: idle for {now - since:.0f} s")

    def _record(self, action: str, detail: str) -> None:
        log.info("scaler: %s: %s", action, detail)
        self.events.append(ScalingEvent(utcnow(), action, detail))


def scaler_from_environment(
    runtime: object, environ: Mapping[str, str] | None = None
) -> Scaler | None:
    """The scaler `OSCAR_SCALER` asks for, on a cluster runtime; `None` when not asked."""
    environ = os.environ if environ is None else environ
    name = environ.get("OSCAR_SCALER", "").strip()
    if not name:
        return None
    if not isinstance(runtime, ScalableCluster):
        raise ValueError("OSCAR_SCALER needs cluster mode (OSCAR_RUNTIME=swarm)")
    return Scaler(runtime, provider_named(name, environ), ScalingPolicy.from_environment(environ))
