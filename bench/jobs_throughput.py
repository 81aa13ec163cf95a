"""Throughput: 500 files of 1 KiB through a copy script, files per second end to end (first PUT
to last job succeeded), against a loop of bare `docker run` at the same concurrency doing the same
copy, measured in the same run.

    .venv/bin/python -m bench.jobs_throughput [--files 500] [--concurrency 4] [--rounds 5] [--warm]
        [--baseline-src /tmp/base/src]

The service's `max_concurrency` is the concurrency; the baseline runs that many threads, each
calling `docker run --rm` with the file's directory bind-mounted. The files are split into
rounds that alternate between the two (three with `--baseline-src`: a server of another tree, the
code before a change), so that a change in the machine's load during the run hits all alike.
Target: ours ≥ 1.0 × bare (issue 18); with `--warm` (the service's jobs in as many warm
containers as the concurrency, `warm_jobs`), ≥ 10 × bare (issue 18).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.server import RunningServer

from bench.jobs_support import (
    IMAGE,
    add_baseline_option,
    docker_run,
    stop_all,
    succeeded_jobs,
    tree_servers,
    warm_fields,
)

COPY = 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"\n'
PAYLOAD = b"x" * 1024


def platform_round(running: RunningServer, s3: Any, first: int, count: int) -> float:
    """Upload `count` files and wait until their jobs have succeeded, polling every 0.1 s (the
    wait's resolution: under 1 % of a round of 40 or more files)."""
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda index: s3.put_object(
                    Bucket="throughput", Key=f"in/{index:04}.bin", Body=PAYLOAD
                ),
                range(first, first + count),
            )
        )
    with running.client() as client:
        while succeeded_jobs(client) < first + count:
            time.sleep(0.1)
    return time.monotonic() - started


def bare_round(work: Path, concurrency: int, first: int, count: int) -> float:
    for index in range(first, first + count):
        directory = work / f"{index:04}"
        (directory / "out").mkdir(parents=True)
        (directory / "in").write_bytes(PAYLOAD)

    def copy(index: int) -> None:
        directory = work / f"{index:04}"
        docker_run(
            ["-v", f"{directory}:/w", "--cpus", "0.1", "--memory", "32m", IMAGE]
            + ["cp", "/w/in", "/w/out/in"]
        )

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(copy, range(first, first + count)))
    elapsed = time.monotonic() - started
    missing = [i for i in range(first, first + count) if not (work / f"{i:04}/out/in").exists()]
    if missing:
        raise RuntimeError(f"bare docker run did not copy {len(missing)} file(s)")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warm", action="store_true", help="the service has warm_jobs")
    add_baseline_option(parser)
    options = parser.parse_args()
    per_round = options.files // options.rounds
    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as temporary:
        root = Path(temporary)
        servers = tree_servers(root, options.baseline_src)
        try:
            clients = {}
            for name, running in servers.items():
                running.create_service(
                    {
                        "name": "throughput",
                        "image": IMAGE,
                        "cpu": "0.1",
                        "memory": "32Mi",
                        "max_concurrency": options.concurrency,
                        "script": COPY,
                        "input": [{"path": "throughput/in"}],
                        "output": [{"path": "throughput/out"}],
                        **warm_fields(options.warm, options.concurrency),
                    },
                )
                clients[name] = running.s3_client()
            bare_seconds = 0.0
            seconds = dict.fromkeys(servers, 0.0)
            for round_number in range(options.rounds):
                first = round_number * per_round
                bare_seconds += bare_round(root / "bare", options.concurrency, first, per_round)
                for name, running in servers.items():
                    seconds[name] += platform_round(running, clients[name], first, per_round)
            for s3 in clients.values():
                listed = s3.list_objects_v2(Bucket="throughput", Prefix="out/", MaxKeys=1000)
                outputs = [item for item in listed.get("Contents", []) if item["Size"] > 0]
                if len(outputs) != per_round * options.rounds:
                    raise RuntimeError(f"expected {per_round * options.rounds} outputs")
        finally:
            stop_all(servers)
    files = per_round * options.rounds
    bare = files / bare_seconds
    target = 10.0 if options.warm else 1.0
    load = os.getloadavg()
    print(
        f"files {files} in {options.rounds} alternating rounds, concurrency {options.concurrency}"
        f", load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"bare docker run : {bare:.2f} files/s")
    for name, taken in seconds.items():
        ours = files / taken
        print(
            f"{name:16}: {ours:.2f} files/s, ratio to bare {ours / bare:.2f}"
            f" (target ≥ {target:.2f})"
        )


if __name__ == "__main__":
    main()
