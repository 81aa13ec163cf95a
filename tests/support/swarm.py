"""A real multi-node Docker Swarm on this one machine, for cluster-mode tests.

Every node is a private `dockerd` in its own network namespace, attached to a bridge on the
host (`osw<N>`, a private /24 chosen free at start: the host side is `.1`, node i is `.10+i`).
The first node is the Swarm manager (it runs tasks too); the host's own dockerd is never
touched, so the rest of the suite and other users of the host are unaffected.

Each daemon also runs in private mount and UTS namespaces: its host name is its netns name,
and its own directory is bind-mounted at `NODE_RUN` (/run/oscar-node), so that a task that
mounts `NODE_RUN/docker.sock` gets the socket of the node it runs on, like `/var/run/docker.sock`
on a real machine.

`Swarm.stop()` removes everything that `start_swarm` made (daemons, namespaces, links, the
firewall rule that lets the bridge forward, data directories), even after a half-done start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker

NODE_RUN = "/run/oscar-node"
"""Where each node daemon sees its own run directory (socket, node-local job directories)."""
_SUBNET_PREFIX = "10.213"
_DAEMON_START_SECONDS = 60.0


def _run(*argv: str, stdin: bytes | None = None, check: bool = True) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode(errors="replace")


def _free_subnet() -> int:
    """A third octet N such that 10.213.N.0/24 is used by no route or bridge of this host."""
    used = _run("ip", "-4", "route", "show", "table", "all") + _run("ip", "-br", "link")
    for n in range(os.getpid() % 200 + 20, 256):
        if f"{_SUBNET_PREFIX}.{n}." not in used and f"osw{n} " not in used:
            return n
    raise RuntimeError("no free 10.213.N.0/24 subnet for a test swarm")


@dataclass
class SwarmNode:
    name: str
    netns: str
    address: str
    root: Path
    process: subprocess.Popen[bytes] | None = None
    pid: int | None = None
    """The daemon's process (group) id: `process` exists only in the process that started it."""
    index: int = 0

    @property
    def hostname(self) -> str:
        """What Swarm calls the node (each daemon has its own UTS namespace)."""
        return f"{self.netns}"

    @property
    def cgroup_parent(self) -> str:
        return f"oscar-{self.netns}"

    @property
    def socket(self) -> Path:
        return self.root / "run" / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=60)

    def docker(self, *argv: str, stdin: bytes | None = None) -> str:
        return _run("docker", "-H", self.docker_host, *argv, stdin=stdin)

    def kill(self) -> None:
        """`kill -9` the daemon (the node dies; its containerd and containers stay behind until
        `Swarm.stop`, as on a machine whose Docker Engine crashed)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        elif self.process is None and self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)


@dataclass
class Swarm:
    subnet: int
    root: Path
    nodes: list[SwarmNode] = field(default_factory=list)
    bridge_up: bool = False
    firewall_rule: list[str] = field(default_factory=list)
    made_node_run: bool = False

    @property
    def bridge(self) -> str:
        return f"osw{self.subnet}"

    @property
    def host_address(self) -> str:
        """The host's address on the swarm's bridge: where tasks reach servers on the host."""
        return f"{_SUBNET_PREFIX}.{self.subnet}.1"

    @property
    def manager(self) -> SwarmNode:
        return self.nodes[0]

    @property
    def workers(self) -> list[SwarmNode]:
        return self.nodes[1:]

    def load_image(self, image: str) -> None:
        """Copy an image from the host daemon into every node (`docker save | docker load`)."""
        archive = self.root / "image.tar"
        _run("docker", "save", "-o", str(archive), image)
        try:
            for node in self.nodes:
                node.docker("load", "-q", "-i", str(archive))
        finally:
            archive.unlink()

    @property
    def state_file(self) -> Path:
        return self.root / "swarm.json"

    def save(self) -> None:
        """Write what `Swarm.load` needs to add or remove nodes from another process (the
        scaler's provider programs in the elasticity test)."""
        state = {
            "subnet": self.subnet,
            "bridge_up": self.bridge_up,
            "firewall_rule": self.firewall_rule,
            "made_node_run": self.made_node_run,
            "nodes": [
                {
                    "name": node.name,
                    "netns": node.netns,
                    "address": node.address,
                    "root": str(node.root),
                    "index": node.index,
                    "pid": node.process.pid if node.process is not None else node.pid,
                }  # fmt: skip
                for node in self.nodes
            ],
        }
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(self.state_file)

    @classmethod
    def load(cls, root: Path) -> Swarm:
        state = json.loads((root / "swarm.json").read_text())
        swarm = cls(
            subnet=state["subnet"],
            root=root,
            bridge_up=state["bridge_up"],
            firewall_rule=state["firewall_rule"],
            made_node_run=state["made_node_run"],
        )
        for node in state["nodes"]:
            swarm.nodes.append(
                SwarmNode(
                    name=node["name"],
                    netns=node["netns"],
                    address=node["address"],
                    root=Path(node["root"]),
                    pid=node["pid"],
                    index=node["index"],
                )  # fmt: skip
            )
        return swarm

    def stop(self) -> None:
        if self.state_file.exists():  # nodes another process added since
            known = {node.netns for node in self.nodes}
            self.nodes += [n for n in Swarm.load(self.root).nodes if n.netns not in known]
        for node in self.nodes:
            self._stop_node(node)
        if self.firewall_rule:
            _run("iptables", "-D", *self.firewall_rule, check=False)
            self.firewall_rule = []
        if self.bridge_up:
            _run("ip", "link", "del", self.bridge, check=False)
            self.bridge_up = False
        shutil.rmtree(self.root, ignore_errors=True)
        if self.made_node_run:
            with contextlib.suppress(OSError):
                os.rmdir(NODE_RUN)

    def _stop_node(self, node: SwarmNode) -> None:
        """Kill the node outright (its state is thrown away): the daemon and its containerd
        (one process group), the shims (in its network namespace), and the containers (in its
        own cgroup parent); then remove the namespace, the cgroups and the files."""
        if node.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait()
        else:
            node.kill()
        self._kill_netns_processes(node.netns)
        _remove_cgroups(node.cgroup_parent)
        _run("ip", "netns", "del", node.netns, check=False)
        # Overlay mounts were made in the daemon's private mount namespace: gone with it.
        shutil.rmtree(node.root, ignore_errors=True)

    @staticmethod
    def _kill_netns_processes(netns: str) -> None:
        pids = _run("ip", "netns", "pids", netns, check=False).split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pids and time.monotonic() < deadline:
            pids = _run("ip", "netns", "pids", netns, check=False).split()
            time.sleep(0.1)


def start_swarm(nodes: int, root: Path) -> Swarm:
    """Start `nodes` daemons (the first one the manager) and join them into one swarm."""
    swarm = Swarm(subnet=_free_subnet(), root=root)
    try:
        _make_bridge(swarm)
        for index in range(nodes):
            node = _start_node(swarm, index)
            swarm.nodes.append(node)
        for node in swarm.nodes:
            _wait_for_daemon(node)
        manager = swarm.manager
        manager.docker(
            "swarm", "init", "--advertise-addr", manager.address,
            "--listen-addr", f"{manager.address}:2377",
        )  # fmt: skip
        token = manager.docker("swarm", "join-token", "-q", "worker").strip()
        for node in swarm.workers:
            node.docker(
                "swarm", "join", "--token", token, "--advertise-addr", node.address,
                "--listen-addr", f"{node.address}:2377", f"{manager.address}:2377",
            )  # fmt: skip
        _wait_for_ready_nodes(swarm)
        swarm.save()
    except BaseException:
        swarm.stop()
        raise
    return swarm


@contextlib.contextmanager
def local_registry(swarm: Swarm) -> Iterator[str]:
    """Debian's `docker-registry` on the host's side of the swarm's bridge (plain HTTP, storage
    in the swarm's directory); yields its `host:port`, as image names start with it."""
    program = shutil.which("docker-registry")
    if program is None:
        raise RuntimeError("no docker-registry: install the Debian package (scripts/test does)")
    with socket.socket() as probe:
        probe.bind((swarm.host_address, 0))
        address = f"{swarm.host_address}:{probe.getsockname()[1]}"
    config = swarm.root / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {swarm.root / 'registry'}\n"
        f"http:\n  addr: {address}\n"
    )
    with (swarm.root / "registry.log").open("wb") as log:
        process = subprocess.Popen([program, "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("docker-registry did not start") from None
                time.sleep(0.1)
        yield address
    finally:
        process.terminate()
        process.wait(10)


def add_nodes(swarm: Swarm, count: int) -> list[SwarmNode]:
    """Start `count` more daemons, join them as workers, give them the images saved under
    `<root>/images`, and wait until the swarm sees them ready."""
    first = max(node.index for node in swarm.nodes) + 1
    added = [_start_node(swarm, index) for index in range(first, first + count)]
    swarm.nodes += added
    swarm.save()
    for node in added:
        _wait_for_daemon(node)
    token = swarm.manager.docker("swarm", "join-token", "-q", "worker").strip()
    for node in added:
        for image in sorted((swarm.root / "images").glob("*.tar")):
            node.docker("load", "-q", "-i", str(image))
        node.docker(
            "swarm", "join", "--token", token, "--advertise-addr", node.address,
            "--listen-addr", f"{node.address}:2377", f"{swarm.manager.address}:2377",
        )  # fmt: skip
    _wait_for_ready_nodes(swarm)
    return added


def remove_node(swarm: Swarm, hostname: str) -> None:
    """Shut a node down for good (its daemon, namespace and files): a machine turned off."""
    for node in list(swarm.nodes):
        if node.hostname == hostname and node is not swarm.manager:
            swarm._stop_node(node)
            swarm.nodes.remove(node)
            swarm.save()
            return
    raise RuntimeError(f"no worker node {hostname} in this swarm")


def _make_bridge(swarm: Swarm) -> None:
    _run("ip", "link", "add", swarm.bridge, "type", "bridge")
    swarm.bridge_up = True
    _run("ip", "addr", "add", f"{swarm.host_address}/24", "dev", swarm.bridge)
    _run("ip", "link", "set", swarm.bridge, "up")
    # The host's FORWARD policy is DROP (Docker's) and bridged frames go through it here
    # (br_netfilter): let the nodes talk to each other across this bridge only.
    rule = ["DOCKER-USER", "-i", swarm.bridge, "-o", swarm.bridge, "-j", "ACCEPT"]
    if _run("iptables", "-L", "DOCKER-USER", "-n", check=False):
        _run("iptables", "-I", *rule)
        swarm.firewall_rule = rule
    if not os.path.isdir(NODE_RUN):
        os.makedirs(NODE_RUN)
        swarm.made_node_run = True


def _start_node(swarm: Swarm, index: int) -> SwarmNode:
    name = "manager" if index == 0 else f"worker{index}"
    node = SwarmNode(
        name=name,
        netns=f"oscar-sw{swarm.subnet}-{name}",
        address=f"{_SUBNET_PREFIX}.{swarm.subnet}.{10 + index}",
        root=swarm.root / name,
        index=index,
    )
    (node.root / "run" / "work").mkdir(parents=True)
    _run("ip", "netns", "add", node.netns)
    outer, inner = f"osw{swarm.subnet}h{index}", f"osw{swarm.subnet}n{index}"
    _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
    _run("ip", "link", "set", outer, "master", swarm.bridge, "up")
    _run("ip", "link", "set", inner, "netns", node.netns)
    inside = ["ip", "netns", "exec", node.netns]
    _run(*inside, "ip", "link", "set", "lo", "up")
    _run(*inside, "ip", "link", "set", inner, "name", "eth0")
    _run(*inside, "ip", "addr", "add", f"{node.address}/24", "dev", "eth0")
    _run(*inside, "ip", "link", "set", "eth0", "up")
    _run(*inside, "ip", "route", "add", "default", "via", swarm.host_address)
    daemon = (
        f"hostname {node.hostname} && mount --bind {node.root / 'run'} {NODE_RUN} && "
        f"exec nsenter --net=/var/run/netns/{node.netns} dockerd "
        f"--data-root {node.root / 'data'} --exec-root {node.root / 'exec'} "
        f"--pidfile {node.root / 'dockerd.pid'} -H unix://{NODE_RUN}/docker.sock "
        f"--bip 192.168.250.1/24 --iptables=true --ip6tables=false --userland-proxy=false "
        f"--default-address-pool base=10.214.0.0/16,size=24 "
        # A test registry listens in plain HTTP on the host's side of the bridge.
        f"--insecure-registry {_SUBNET_PREFIX}.0.0/16 "
        f"--cgroup-parent /{node.cgroup_parent}"
    )
    env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
    env.pop("DOCKER_HOST", None)
    with (node.root / "dockerd.log").open("wb") as log:
        node.process = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", daemon],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return node


def _remove_cgroups(parent: str) -> None:
    """Kill what is left in a node's containers' cgroups and remove them, in every hierarchy."""
    tops = [top for top in Path("/sys/fs/cgroup").glob(f"*/{parent}") if top.is_dir()]
    tops += [Path("/sys/fs/cgroup") / parent] if (Path("/sys/fs/cgroup") / parent).is_dir() else []
    for top in tops:
        for procs in top.rglob("cgroup.procs"):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 10
    for top in tops:
        for directory in sorted(
            (d for d in top.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)
        ) + [top]:
            while time.monotonic() < deadline:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # its processes are still exiting


def _wait_for_daemon(node: SwarmNode) -> None:
    deadline = time.monotonic() + _DAEMON_START_SECONDS
    while time.monotonic() < deadline:
        if node.process is not None and node.process.poll() is not None:
            raise RuntimeError(f"dockerd of {node.name} exited: {_tail(node)}")
        if node.socket.exists():
            try:
                node.client().ping()
                return
            except docker.errors.DockerException:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"dockerd of {node.name} did not answer: {_tail(node)}")


def _wait_for_ready_nodes(swarm: Swarm) -> None:
    client = swarm.manager.client()
    deadline = time.monotonic() + _DAEMON_START_SECONDS
    while time.monotonic() < deadline:
        states = [n.attrs["Status"]["State"] for n in client.nodes.list()]
        if len(states) == len(swarm.nodes) and all(s == "ready" for s in states):
            return
        time.sleep(0.2)
    raise RuntimeError(f"swarm nodes not ready: {states}")


def _tail(node: SwarmNode) -> str:
    try:
        return (node.root / "dockerd.log").read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


def main(argv: list[str]) -> int:
    """The `command` node provider of the elasticity test, on a swarm saved under ROOT:
    `up ROOT COUNT` adds COUNT worker nodes, `down ROOT NODE_ID HOSTNAME` shuts one down."""
    if len(argv) >= 3 and argv[0] == "up":
        add_nodes(Swarm.load(Path(argv[1])), int(argv[2]))
        return 0
    if len(argv) >= 4 and argv[0] == "down":
        remove_node(Swarm.load(Path(argv[1])), argv[3])
        return 0
    print("usage: python -m tests.support.swarm up ROOT COUNT | down ROOT NODE_ID HOSTNAME")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
