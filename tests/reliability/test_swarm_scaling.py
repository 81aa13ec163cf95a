"""Elasticity on a real swarm: one node at first, a burst of jobs, the `command` node provider
adds namespaced nodes up to the maximum; once idle they are drained and removed down to the
minimum. The provider's programs are `python -m tests.support.swarm up|down`, which start a
private `dockerd` in a network namespace and join it (or shut one down)."""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.test_swarm_cluster import (
    AGENT_IMAGE,
    IMAGE,
    install_images,
    serve_on,
    usable,
)
from tests.support.dashboard import sign_in
from tests.support.server import RunningServer
from tests.support.swarm import Swarm, start_swarm

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BURST = 40
MAX_NODES = 3


@pytest.fixture(scope="module")
def swarm() -> Iterator[Swarm]:
    if not usable():
        pytest.skip("needs root with dockerd, nsenter, unshare, ip and iptables")
    cluster = start_swarm(1, Path(tempfile.mkdtemp(prefix="oscar-scale-")))
    try:
        install_images(cluster)
        # What a new node gets before it joins (a site would pull from its registry).
        images = cluster.root / "images"
        images.mkdir()
        for index, image in enumerate((IMAGE, AGENT_IMAGE)):
            cluster.manager.docker("save", "-o", str(images / f"{index}.tar"), image)
        yield cluster
    finally:
        cluster.stop()


def _node_count(swarm: Swarm) -> int:
    return len(swarm.manager.client().nodes.list())


def test_a_burst_adds_nodes_up_to_the_max_and_idle_ones_go_down_to_the_min(
    swarm: Swarm, tmp_path: Path
) -> None:
    program = f"{shlex.quote(sys.executable)} -m tests.support.swarm"
    root = shlex.quote(str(swarm.root))
    server = serve_on(
        swarm,
        tmp_path / "data",
        extra={
            "OSCAR_JOB_CPU": str(BURST),  # every job becomes a task: Swarm holds the queue
            "OSCAR_SCALER": "command",
            "OSCAR_SCALER_UP": f"{program} up {root}",
            "OSCAR_SCALER_DOWN": f"{program} down {root}",
            "OSCAR_SCALER_MIN_NODES": "1",
            "OSCAR_SCALER_MAX_NODES": str(MAX_NODES),
            "OSCAR_SCALER_PENDING_SECONDS": "1",
            "OSCAR_SCALER_IDLE_SECONDS": "3",
            "OSCAR_SCALER_COOLDOWN_SECONDS": "2",
            # The jobs may run only on nodes the scaler added and labelled.
            "OSCAR_SCALER_NODE_LABELS": "scaled=yes",
        },
    )
    try:
        server.create_service(
            {"name": "burst", "image": IMAGE, "script": "sleep 3\n", "cpu": "1",
             "memory": "32Mi", "input": [{"path": "burst/in"}],
             "placement": ["node.labels.scaled==yes"],
             # The test image is in no registry: no `Always` pull (its tag is `latest`).
             "image_pull_policy": "IfNotPresent"}
        )  # fmt: skip
        s3 = server.s3_client()
        for index in range(BURST):
            s3.put_object(Bucket="burst", Key=f"in/{index:02}", Body=b"x")
        peak = 1
        deadline = time.monotonic() + 400
        jobs: dict[str, dict[str, object]] = {}
        while time.monotonic() < deadline:
            peak = max(peak, _node_count(swarm))
            with server.client() as client:
                jobs = client.get("/system/logs/burst", params={"limit": 100}).json()["jobs"]
            if len(jobs) == BURST and all(job["status"] == "Succeeded" for job in jobs.values()):
                break
            time.sleep(0.5)
        assert len(jobs) == BURST and {job["status"] for job in jobs.values()} == {"Succeeded"}
        ran_on = {job["node"] for job in jobs.values()}
        # Idle: drained, shut down by the provider and removed, down to the minimum.
        while time.monotonic() < deadline and _node_count(swarm) > 1:
            time.sleep(0.5)
        remaining = _node_count(swarm)
        overview = _overview(server)
    finally:
        server.stop()
    assert peak == MAX_NODES, f"the swarm grew to {peak} nodes, not {MAX_NODES}"
    assert len(ran_on) > 1, f"every job ran on {ran_on}: the new nodes took none"
    assert swarm.manager.hostname not in ran_on  # unlabelled: only the added nodes qualify
    assert remaining == 1
    assert len(Swarm.load(swarm.root).nodes) == 1  # the provider shut the added daemons down
    # Every decision is on the dashboard.
    for action in ("add", "label", "drain", "remove"):
        assert f'data-scaling-action="{action}"' in overview, action


def _overview(server: RunningServer) -> str:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        sign_in(client, server)
        return client.get("/ui").text
