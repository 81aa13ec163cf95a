"""Throughput: 500 files of 1 KiB through a copy script, files per second end to end (first PUT
to last job succeeded), against a loop of bare `docker run` at the same concurrency doing the same
copy, measured in the same run.

    .venv/bin/python -m bench.jobs_throughput [--files 500] [--concurrency 4] [--rounds 5] [--warm]

The service's `max_concurrency` is the concurrency; the baseline runs that many threads, each
calling `docker run --rm` with the file's directory bind-mounted. The files are split into
rounds that alternate between the two, so that a change in the machine's load during the run
hits both alike. Target: ours ≥ 0.8 × bare; with `--warm` (the service's jobs in as many warm
containers as the concurrency, `warm_jobs`), ≥ 10 × bare (issue 18).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.server import RunningServer

from bench.jobs_support import IMAGE, docker_run, server, succeeded_jobs, warm_fields

COPY = 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"\n'
PAYLOAD = b"x" * 1024


def platform_round(running: RunningServer, s3: Any, first: int, count: int) -> float:
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
    while succeeded_jobs(running, "throughput") < first + count:
        time.sleep(0.05)
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
    options = parser.parse_args()
    per_round = options.files // options.rounds
    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as temporary:
        root = Path(temporary)
        running = server(root / "data")
        try:
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
            s3 = running.s3_client()
            bare_seconds = ours_seconds = 0.0
            for round_number in range(options.rounds):
                first = round_number * per_round
                bare_seconds += bare_round(root / "bare", options.concurrency, first, per_round)
                ours_seconds += platform_round(running, s3, first, per_round)
            listed = s3.list_objects_v2(Bucket="throughput", Prefix="out/", MaxKeys=1000)
            outputs = [item for item in listed.get("Contents", []) if item["Size"] > 0]
            if len(outputs) != per_round * options.rounds:
                raise RuntimeError(f"expected {per_round * options.rounds} outputs")
        finally:
            running.stop()
    files = per_round * options.rounds
    bare, ours = files / bare_seconds, files / ours_seconds
    print(
        f"files {files} in {options.rounds} alternating rounds, concurrency {options.concurrency}"
    )
    print(f"bare docker run : {bare:.2f} files/s")
    print(f"oscar-py        : {ours:.2f} files/s")
    print(f"ratio {ours / bare:.2f} (target ≥ 0.80)")


if __name__ == "__main__":
    main()
