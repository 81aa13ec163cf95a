"""Cluster mode: per-job overhead on one Swarm node against local mode, and throughput of sleep
jobs against the number of nodes, each measured in the same run (needs root: the nodes are
private `dockerd`s in network namespaces, `tests/support/swarm.py`).

    .venv/bin/python -m bench.swarm_cluster latency [--uploads 20]
    .venv/bin/python -m bench.swarm_cluster throughput [--jobs 24] [--sleep 2]

`latency`: upload → the script's first line, p50/p95, alternating one upload to a local-mode
server (docker runtime) and one to a swarm-mode server on a 1-node swarm; target p50 ≤ 2× local.
The swarm attempts' steps come from the manager's debug log (`node steps`): scheduling (service
created → the agent runs on the node), staging (the agent fetches the work directory), image
and container (the script's container created, the image already on the node), start.

`throughput`: the same burst of `cpu: 1` jobs sleeping `--sleep` s on 1, 2 and 3 nodes of 2 CPUs
(Swarm runs 2 per node); jobs/s, and the ratio to one node.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.reliability.test_swarm_cluster import AGENT_IMAGE, install_images
from tests.support.server import RunningServer, free_port, start_server
from tests.support.swarm import NODE_RUN, Swarm, start_swarm

from bench.jobs_support import IMAGE, READ_UPTIME, boot_clock, describe, percentile, server

SCRIPT = f'{READ_UPTIME}; echo "$up" > "$TMP_OUTPUT_DIR/started"\n'
STEPS = re.compile(r"created ([\d.]+), result ([\d.]+), node steps (.*)$")


def swarm_server(swarm: Swarm, data: Path, cpu: int, debug: bool = False) -> RunningServer:
    return start_server(
        data,
        wait=120,
        env={
            "OSCAR_LOG_LEVEL": "DEBUG" if debug else "WARNING",
            "DOCKER_HOST": swarm.manager.docker_host,
            "OSCAR_RUNTIME": "swarm",
            "OSCAR_SWARM_STAGING": f"{swarm.host_address}:{free_port()}",
            "OSCAR_SWARM_AGENT_IMAGE": AGENT_IMAGE,
            "OSCAR_SWARM_NODE_WORK": f"{NODE_RUN}/work",
            "OSCAR_SWARM_NODE_SOCKET": f"{NODE_RUN}/docker.sock",
            "OSCAR_JOB_CPU": str(cpu),
        },
    )


def _latency_service(running: RunningServer) -> Any:
    running.create_service(
        {"name": "latency", "image": IMAGE, "cpu": "0.5", "memory": "64Mi", "script": SCRIPT,
         "input": [{"path": "latency/in"}], "output": [{"path": "latency/out"}]}
    )  # fmt: skip
    return running.s3_client()


def _one_upload(s3: Any, key: str) -> float:
    s3.delete_object(Bucket="latency", Key="out/started")
    s3.put_object(Bucket="latency", Key=f"in/{key}", Body=b"x")
    acknowledged = boot_clock()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            body = s3.get_object(Bucket="latency", Key="out/started")["Body"].read()
            return float(body.decode().strip()) - acknowledged
        except s3.exceptions.NoSuchKey:
            time.sleep(0.01)
    raise TimeoutError(key)


def latency(uploads: int, root: Path) -> None:
    swarm = start_swarm(1, root / "swarm")
    try:
        install_images(swarm)
        local = server(root / "local")
        clustered = swarm_server(swarm, root / "clustered", cpu=2, debug=True)
        try:
            local_s3, swarm_s3 = _latency_service(local), _latency_service(clustered)
            _one_upload(local_s3, "warm-up")
            _one_upload(swarm_s3, "warm-up")
            ours_local: list[float] = []
            ours_swarm: list[float] = []
            for index in range(uploads):
                ours_local.append(_one_upload(local_s3, str(index)))
                ours_swarm.append(_one_upload(swarm_s3, str(index)))
            steps = _steps(clustered.log())
        finally:
            local.stop()
            clustered.stop()
    finally:
        swarm.stop()
    ratio = percentile(ours_swarm, 0.5) / percentile(ours_local, 0.5)
    print(f"local mode (docker)  : {describe(ours_local)}")
    print(f"swarm mode, 1 node   : {describe(ours_swarm)}")
    print(f"ratio p50 {ratio:.2f} (target ≤ 2.00)")
    for name, values in steps.items():
        print(f"  swarm step {name:<28}: median {statistics.median(values) * 1000:.0f} ms")


def _steps(log: str) -> dict[str, list[float]]:
    """Per attempt, from the manager's debug line: service created → agent → staged → created
    → started."""
    found: dict[str, list[float]] = {}
    names = {
        "agent": "scheduling (task placed, agent up)",
        "staged": "staging (work directory fetched)",
        "created": "image and container created",
        "started": "container started",
    }
    for line in log.splitlines():
        match = STEPS.search(line)
        if match is None:
            continue
        previous = float(match.group(1))
        for step in match.group(3).split():
            name, _, moment = step.partition("=")
            if name in names:
                found.setdefault(names[name], []).append(float(moment) - previous)
                previous = float(moment)
    return found


def throughput(jobs: int, sleep: float, root: Path) -> None:
    rates: dict[int, float] = {}
    for nodes in (1, 2, 3):
        swarm = start_swarm(nodes, root / f"swarm{nodes}")
        try:
            install_images(swarm)
            running = swarm_server(swarm, root / f"data{nodes}", cpu=2 * nodes)
            try:
                rates[nodes] = _burst(running, jobs, sleep)
            finally:
                running.stop()
        finally:
            swarm.stop()
        print(f"{nodes} node(s): {jobs} jobs in {jobs / rates[nodes]:.1f} s, {rates[nodes]:.2f}/s")
    for nodes, rate in rates.items():
        print(f"{nodes} node(s): {rate / rates[1]:.2f}× one node (capacity {nodes}×)")


def _burst(running: RunningServer, jobs: int, sleep: float) -> float:
    running.create_service(
        {"name": "burst", "image": IMAGE, "cpu": "1", "memory": "32Mi",
         "script": f"sleep {sleep}\n", "input": [{"path": "burst/in"}]}
    )  # fmt: skip
    s3 = running.s3_client()
    started = time.monotonic()
    for index in range(jobs):
        s3.put_object(Bucket="burst", Key=f"in/{index:03}", Body=b"x")
    while True:
        with running.client() as client:
            listed = client.get("/system/logs/burst", params={"limit": 1000}).json()["jobs"]
        states = [job["status"] for job in listed.values()]
        if "Failed" in states:
            raise RuntimeError("a benchmark job failed")
        if states.count("Succeeded") == jobs:
            return jobs / (time.monotonic() - started)
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("latency", "throughput"))
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--sleep", type=float, default=2.0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as temporary:
        if options.what == "latency":
            latency(options.uploads, Path(temporary))
        else:
            throughput(options.jobs, options.sleep, Path(temporary))


if __name__ == "__main__":
    main()
