"""The docker runtime alone, without the platform's per-job path: this tree's
`engine/runtimes/docker.py` against another tree's (the code before a change) and a loop of bare
`docker run`, in alternating rounds of the same run.

    .venv/bin/python -m bench.jobs_runtime --baseline-src /tmp/base/src [--jobs 80] [--rounds 4]

Each of `--concurrency` threads runs one job after another: start, wait, remove (what holds a
job's slot), a copy of a 1 KiB file as in `bench.jobs_throughput`, with the same limits. Also
reported: how long after `start` was called the script's first line ran (boot clock, 10 ms
steps). The baseline tree's `docker.py` is loaded beside this one; the modules it imports are
this tree's, so only the runtime differs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.jobs_support import IMAGE, READ_UPTIME, boot_clock, docker_run, percentile
from oscarpy.engine.runtimes import docker as this_docker
from oscarpy.engine.runtimes.base import Limits, RunSpec

LIMITS = Limits(cpu_cores=0.1, memory_bytes=32 * 2**20)
SCRIPT = f'{READ_UPTIME}; echo "$up" > /oscar-job/started; cp /oscar-job/in /oscar-job/out\n'


def load_docker_module(src: str) -> ModuleType:
    path = Path(src) / "oscarpy" / "engine" / "runtimes" / "docker.py"
    spec = importlib.util.spec_from_file_location("baseline_docker_runtime", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_job(runtime: Any, root: Path) -> float:
    """Run one job through `runtime`; returns the delay from `start` to the script's start."""
    work = root / uuid.uuid4().hex
    work.mkdir()
    work.chmod(0o777)
    (work / "script.sh").write_text(SCRIPT)
    (work / "in").write_bytes(b"x" * 1024)
    spec = RunSpec(uuid.uuid4().hex, "bench", 1, IMAGE, work, "script.sh", limits=LIMITS)
    before = boot_clock()
    execution = runtime.start(spec)
    try:
        if not execution.wait(60, lambda chunk: None).succeeded:
            raise RuntimeError("a benchmark job failed")
    finally:
        execution.remove()
    return float((work / "started").read_text()) - before


def runtime_round(
    runtime: Any, root: Path, jobs: int, concurrency: int
) -> tuple[float, list[float]]:
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        delays = list(pool.map(lambda _: one_job(runtime, root), range(jobs)))
    return time.monotonic() - started, delays


def bare_round(root: Path, jobs: int, concurrency: int) -> float:
    def copy(index: int) -> None:
        work = root / f"bare-{uuid.uuid4().hex}"
        work.mkdir()
        (work / "in").write_bytes(b"x" * 1024)
        docker_run(
            ["-v", f"{work}:/w", "--cpus", "0.1", "--memory", "32m", IMAGE, "cp", "/w/in", "/w/out"]
        )

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(copy, range(jobs)))
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", required=True, help="src/ of the baseline tree")
    parser.add_argument("--jobs", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    options = parser.parse_args()
    instance = f"bench-{uuid.uuid4().hex[:8]}"
    runtimes = {
        "baseline tree": load_docker_module(options.baseline_src).DockerRuntime(instance),
        "this tree": this_docker.DockerRuntime(instance),
    }
    per_round = options.jobs // options.rounds
    seconds = dict.fromkeys(runtimes, 0.0)
    delays: dict[str, list[float]] = {name: [] for name in runtimes}
    bare_seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as temporary:
        root = Path(temporary)
        for runtime in runtimes.values():
            runtime.prepare(IMAGE)
            one_job(runtime, root)  # warm-up
        try:
            for _ in range(options.rounds):
                bare_seconds += bare_round(root, per_round, options.concurrency)
                for name, runtime in runtimes.items():
                    taken, started = runtime_round(runtime, root, per_round, options.concurrency)
                    seconds[name] += taken
                    delays[name] += started
        finally:
            for runtime in runtimes.values():
                runtime.close()
    jobs = per_round * options.rounds
    load = os.getloadavg()
    print(f"jobs {jobs} in {options.rounds} alternating rounds, concurrency {options.concurrency}")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"bare docker run : {jobs / bare_seconds:.2f} jobs/s")
    for name in runtimes:
        rate = jobs / seconds[name]
        p50, p95 = percentile(delays[name], 0.5), percentile(delays[name], 0.95)
        print(
            f"{name:16}: {rate:.2f} jobs/s ({rate * bare_seconds / jobs:.2f} × bare), start → "
            f"script p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
