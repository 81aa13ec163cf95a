"""Latency: from the PUT acknowledged to the script's first line running, p50/p95 over 50 uploads,
against a bare `docker run` of the same image doing the same, measured in the same run.

    .venv/bin/python -m bench.jobs_latency [--uploads 50] [--warm] [--baseline-src /tmp/base/src]

The job's first line reads the boot clock and writes it as an output; the baseline is the same
line in `docker run --rm` with the same bind mount and limits, timed from just before the command
starts; they alternate, one of each at a time (with `--baseline-src`, a server of another tree
too). Target: p50 ≤ 1.0 × bare (issue 18). With `--warm` the service runs its jobs in a warm
container (`warm_jobs`, issue 18: p50 ≤ 50 ms).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.jobs_support import (
    IMAGE,
    READ_UPTIME,
    add_baseline_option,
    boot_clock,
    describe,
    docker_run,
    percentile,
    stop_all,
    tree_servers,
    warm_fields,
)


def bare_arguments(work: Path) -> list[str]:
    arguments = ["-v", f"{work}:/w", "--cpus", "0.5", "--memory", "64m", "--pids-limit", "1024"]
    arguments += ["--security-opt", "no-new-privileges", IMAGE]
    return arguments + ["sh", "-c", f'{READ_UPTIME}; echo "$up"']


def bare_once(arguments: list[str]) -> float:
    before = boot_clock()
    return float(docker_run(arguments).strip()) - before


def measure(
    uploads: int, root: Path, warm: bool = False, baseline_src: str | None = None
) -> tuple[list[float], dict[str, list[float]]]:
    """Alternate one bare run and one upload to each server, so that load changes hit all
    alike; returns the bare times and each tree's."""
    arguments = bare_arguments(root / "bare")
    (root / "bare").mkdir(parents=True)
    servers = tree_servers(root, baseline_src)
    try:
        clients = {}
        for name, running in servers.items():
            running.create_service(
                {
                    "name": "latency",
                    "image": IMAGE,
                    "cpu": "0.5",
                    "memory": "64Mi",
                    "script": f'{READ_UPTIME}; echo "$up" > "$TMP_OUTPUT_DIR/started"\n',
                    "input": [{"path": "latency/in"}],
                    "output": [{"path": "latency/out"}],
                    **warm_fields(warm, 1),
                },
            )
            clients[name] = s3 = running.s3_client()
            s3.put_object(Bucket="latency", Key="in/warm-up", Body=b"x")
            _wait_for(s3, "out/started")
        bare_once(arguments)  # warm-up
        bare: list[float] = []
        ours: dict[str, list[float]] = {name: [] for name in servers}
        for index in range(uploads):
            bare.append(bare_once(arguments))
            for name, s3 in clients.items():
                s3.delete_object(Bucket="latency", Key="out/started")
                s3.put_object(Bucket="latency", Key=f"in/{index}", Body=b"x")
                acknowledged = boot_clock()
                ours[name].append(float(_wait_for(s3, "out/started")) - acknowledged)
        return bare, ours
    finally:
        stop_all(servers)


def _wait_for(s3: Any, key: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            body = s3.get_object(Bucket="latency", Key=key)["Body"].read()
            return str(body.decode().strip())
        except s3.exceptions.NoSuchKey:
            time.sleep(0.01)
    raise TimeoutError(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--warm", action="store_true", help="the service has warm_jobs")
    add_baseline_option(parser)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as temporary:
        root = Path(temporary)
        bare, ours = measure(options.uploads, root, options.warm, options.baseline_src)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"bare docker run : {describe(bare)}")
    for name, times in ours.items():
        ratio_p50 = percentile(times, 0.5) / percentile(bare, 0.5)
        ratio_p95 = percentile(times, 0.95) / percentile(bare, 0.95)
        print(f"{name:16}: {describe(times)}")
        print(
            f"{'':16}  ratio to bare p50 {ratio_p50:.2f}, p95 {ratio_p95:.2f} (target p50 ≤ 1.00)"
        )


if __name__ == "__main__":
    main()
