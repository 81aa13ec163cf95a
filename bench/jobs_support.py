"""Shared by the job benchmarks: a real `oscar serve`, an S3 client, and timing helpers.

Times inside containers are read from `/proc/uptime` (the host's boot clock, 10 ms steps):
busybox's `date` has no sub-second format, and the boot clock is the same in and out of a
container, so a script's start can be compared with the moment the host saw the PUT return.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.server import RunningServer, start_server  # noqa: E402

IMAGE = "oscar-test/busybox:latest"
READ_UPTIME = "read up rest < /proc/uptime"


THIS_SRC = str(Path(__file__).resolve().parents[1] / "src")


def boot_clock() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def server(data_dir: Path, args: Sequence[str] = (), **env: str) -> RunningServer:
    return start_server(
        data_dir, env={"OSCAR_LOG_LEVEL": "WARNING", **env}, args=list(args), wait=120
    )


def tree_servers(
    root: Path, baseline_src: str | None, args: Sequence[str] = ()
) -> dict[str, RunningServer]:
    """One `oscar serve` of this tree, and one of `baseline_src` (another tree's `src/`, e.g.
    `git archive <commit> src | tar -x -C /tmp/base`) when given, to measure both in one run;
    `args` go to both (`--runtime process`)."""
    trees = {"this tree": THIS_SRC}
    if baseline_src:
        trees = {"baseline tree": baseline_src, **trees}
    servers: dict[str, RunningServer] = {}
    try:
        for name, source in trees.items():
            servers[name] = server(root / name.replace(" ", "-"), args, PYTHONPATH=source)
    except BaseException:
        stop_all(servers)
        raise
    return servers


def stop_all(servers: dict[str, RunningServer]) -> None:
    for running in servers.values():
        running.stop()


def add_baseline_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline-src",
        help="src/ of another tree (the code before a change), measured in the same run",
    )


def warm_fields(warm: bool, containers: int) -> dict[str, object]:
    """The service fields that run its file jobs in `containers` warm containers (`--warm`)."""
    if not warm:
        return {}
    return {"warm_jobs": True, "synchronous": {"min_scale": containers, "max_scale": containers}}


def succeeded_jobs(client: httpx.Client) -> int:
    """How many jobs of the server have succeeded, from `/system/status` (a few milliseconds
    of the server's CPU: the benchmark polls it while it measures the server, so the poll must
    cost little; a page of `/system/logs` costs ten times more); a failed job stops the
    benchmark."""
    answer = client.get("/system/status")
    answer.raise_for_status()
    states = answer.json()["oscar"]["pods"]["states"]
    if states.get("Failed"):
        raise RuntimeError(f"{states['Failed']} benchmark job(s) failed")
    return int(states.get("Succeeded", 0))


def docker_run(arguments: list[str]) -> str:
    done = subprocess.run(
        ["docker", "run", "--rm", *arguments], capture_output=True, text=True, check=True
    )
    return done.stdout


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def describe(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 0.5) * 1000:.0f} ms, p95 {percentile(values, 0.95) * 1000:.0f} ms"
        f", mean {statistics.mean(values) * 1000:.0f} ms"
    )
