"""Latency: from the PUT acknowledged to the script's first line running, p50/p95 over 50 uploads,
against a bare `docker run` of the same image doing the same, measured in the same run.

    .venv/bin/python bench/jobs_latency.py [--uploads 50]

The job's first line reads the boot clock and writes it as an output; the baseline is the same
line in `docker run --rm` with the same bind mount and limits, timed from just before the command
starts. Overhead target: ours ≤ 1.2 × bare.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.jobs_support import (
    IMAGE,
    READ_UPTIME,
    boot_clock,
    create_service,
    describe,
    docker_run,
    percentile,
    s3_client,
    server,
)


def measure_platform(uploads: int, data_dir: Path) -> list[float]:
    running = server(data_dir)
    try:
        create_service(
            running,
            {
                "name": "latency",
                "image": IMAGE,
                "cpu": "0.5",
                "memory": "64Mi",
                "script": f'{READ_UPTIME}; echo "$up" > "$TMP_OUTPUT_DIR/started"\n',
                "input": [{"path": "latency/in"}],
                "output": [{"path": "latency/out"}],
            },
        )
        s3 = s3_client(running)
        s3.put_object(Bucket="latency", Key="in/warm-up", Body=b"x")
        _wait_for(s3, "out/started")
        latencies = []
        for index in range(uploads):
            s3.delete_object(Bucket="latency", Key="out/started")
            s3.put_object(Bucket="latency", Key=f"in/{index}", Body=b"x")
            acknowledged = boot_clock()
            started = float(_wait_for(s3, "out/started"))
            latencies.append(started - acknowledged)
        return latencies
    finally:
        running.stop()


def _wait_for(s3: object, key: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            body = s3.get_object(Bucket="latency", Key=key)["Body"].read()  # type: ignore[attr-defined]
            return str(body.decode().strip())
        except s3.exceptions.NoSuchKey:  # type: ignore[attr-defined]
            time.sleep(0.01)
    raise TimeoutError(key)


def measure_bare(runs: int, work: Path) -> list[float]:
    work.mkdir(parents=True, exist_ok=True)
    arguments = ["-v", f"{work}:/w", "--cpus", "0.5", "--memory", "64m", "--pids-limit", "1024"]
    arguments += [
        "--security-opt",
        "no-new-privileges",
        IMAGE,
        "sh",
        "-c",
        f'{READ_UPTIME}; echo "$up"',
    ]
    docker_run(arguments)  # warm-up
    latencies = []
    for _ in range(runs):
        before = boot_clock()
        started = float(docker_run(arguments).strip())
        latencies.append(started - before)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=50)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as temporary:
        root = Path(temporary)
        bare = measure_bare(options.uploads, root / "bare")
        ours = measure_platform(options.uploads, root / "data")
    ratio_p50 = percentile(ours, 0.5) / percentile(bare, 0.5)
    ratio_p95 = percentile(ours, 0.95) / percentile(bare, 0.95)
    print(f"bare docker run : {describe(bare)}")
    print(f"oscar-py upload : {describe(ours)}")
    print(f"ratio p50 {ratio_p50:.2f}, p95 {ratio_p95:.2f} (target ≤ 1.20)")


if __name__ == "__main__":
    main()
