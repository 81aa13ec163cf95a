"""Throughput: 500 files of 1 KiB through a copy script, files per second end to end (first PUT
to last job succeeded), against a loop of bare `docker run` at the same concurrency doing the same
copy, measured in the same run.

    .venv/bin/python bench/jobs_throughput.py [--files 500] [--concurrency 4]

The service's `max_concurrency` is the concurrency; the baseline runs that many threads, each
calling `docker run --rm` with the file's directory bind-mounted. Target: ours ≥ 0.8 × bare.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.jobs_support import IMAGE, create_service, docker_run, s3_client, server, succeeded_jobs

COPY = 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"\n'
PAYLOAD = b"x" * 1024


def measure_platform(files: int, concurrency: int, data_dir: Path) -> float:
    running = server(data_dir)
    try:
        create_service(
            running,
            {
                "name": "throughput",
                "image": IMAGE,
                "cpu": "0.1",
                "memory": "32Mi",
                "max_concurrency": concurrency,
                "script": COPY,
                "input": [{"path": "throughput/in"}],
                "output": [{"path": "throughput/out"}],
            },
        )
        s3 = s3_client(running)
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda index: s3.put_object(
                        Bucket="throughput", Key=f"in/{index:04}.bin", Body=PAYLOAD
                    ),
                    range(files),
                )
            )
        while succeeded_jobs(running, "throughput") < files:
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        listed = s3.list_objects_v2(Bucket="throughput", Prefix="out/", MaxKeys=1000)
        outputs = [item for item in listed.get("Contents", []) if not item["Key"].endswith("/")]
        if len(outputs) != files:
            raise RuntimeError(f"expected {files} outputs, found {len(outputs)}")
        return files / elapsed
    finally:
        running.stop()


def measure_bare(files: int, concurrency: int, work: Path) -> float:
    for index in range(files):
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
        list(pool.map(copy, range(files)))
    elapsed = time.monotonic() - started
    copied = sum(1 for index in range(files) if (work / f"{index:04}" / "out" / "in").exists())
    if copied != files:
        raise RuntimeError(f"bare docker run copied {copied} of {files}")
    return files / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as temporary:
        root = Path(temporary)
        bare = measure_bare(options.files, options.concurrency, root / "bare")
        ours = measure_platform(options.files, options.concurrency, root / "data")
    print(f"files {options.files}, concurrency {options.concurrency}")
    print(f"bare docker run : {bare:.2f} files/s")
    print(f"oscar-py        : {ours:.2f} files/s")
    print(f"ratio {ours / bare:.2f} (target ≥ 0.80)")


if __name__ == "__main__":
    main()
