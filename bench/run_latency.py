"""Latency and throughput of `POST /run` from a warm pool, against a bare `docker exec`.

Both sides do the same work: `/bin/sh script.sh` in a running `oscar-test/busybox` container,
the script printing its small JSON input file. The `/run` side also authenticates, writes the
body to disk, records a `run` job with its log in the state DB and deletes the request's work
directory; the baseline is the `docker` CLI (what a user would time) and, as a floor, the same
exec through the Engine API from Python.

    .venv/bin/python -m bench.run_latency [--requests 200] [--seconds 10] [--baseline-src DIR]

With `--baseline-src` (the `src/` of another tree, e.g. `git archive main src | tar -x -C
/tmp/base`), a second server runs that tree and its `/run` is measured in the same turns.

Target (issue 6): p50 of `/run` ≤ 1.5 × p50 of bare `docker exec`, and under 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import httpx
from tests.support.server import RunningServer, start_server

IMAGE = "oscar-test/busybox:latest"
SCRIPT = '#!/bin/sh\ncat "$INPUT_FILE_PATH"\n'
BODY = json.dumps({"message": "hello"}).encode()
CLIENTS = 8


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def measure(
    calls: dict[str, Callable[[], None]], count: int, warm_up: int = 10
) -> dict[str, list[float]]:
    """Latencies of each call, taken in turns, so that the load of a shared machine weighs on
    every side alike."""
    for call in calls.values():
        for _ in range(warm_up):
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(count):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - started)
    return samples


def throughput(calls: list[Callable[[], None]], seconds: float) -> float:
    """Requests per second of len(calls) clients, each calling its own function in a loop."""
    done = [0] * len(calls)
    deadline = time.monotonic() + seconds

    def loop(index: int) -> None:
        while time.monotonic() < deadline:
            calls[index]()
            done[index] += 1

    threads = [threading.Thread(target=loop, args=(index,)) for index in range(len(calls))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - started)


class BareExec:
    """Containers of the same image started by hand, with the script and input mounted."""

    def __init__(self, client: Any, work: Path, count: int) -> None:
        work.mkdir(parents=True, exist_ok=True)
        (work / "script.sh").write_text(SCRIPT)
        (work / "input.json").write_bytes(BODY)
        self.containers = [
            client.containers.run(
                IMAGE,
                ["/bin/sh"],
                stdin_open=True,
                detach=True,
                init=True,
                nano_cpus=10**9,  # the limits the service declares, as its warm containers get
                mem_limit=256 * 2**20,
                memswap_limit=256 * 2**20,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                labels={"oscar-bench": "run_latency"},
                volumes={str(work): {"bind": "/work", "mode": "ro"}},
            )
            for _ in range(count)
        ]
        self.client = client

    def cli(self, index: int = 0) -> Callable[[], None]:
        command = ["docker", "exec", "-e", "INPUT_FILE_PATH=/work/input.json"]
        command += [self.containers[index].id, "/bin/sh", "/work/script.sh"]

        def call() -> None:
            output = subprocess.run(command, capture_output=True, check=True).stdout
            assert output == BODY, output

        return call

    def api(self, index: int = 0) -> Callable[[], None]:
        container = self.containers[index]

        def call() -> None:
            result = container.exec_run(
                ["/bin/sh", "/work/script.sh"], environment={"INPUT_FILE_PATH": "/work/input.json"}
            )
            assert result.exit_code == 0 and result.output == BODY, result

        return call

    def remove(self) -> None:
        for container in self.containers:
            container.remove(force=True)


def run_call(server: RunningServer, service: str) -> Callable[[], None]:
    client = httpx.Client(base_url=server.url, auth=server.auth, timeout=60)

    def call() -> None:
        response = client.post(f"/run/{service}", content=BODY)
        assert response.status_code == 200 and response.content == BODY, response.text

    return call


def create_service(server: RunningServer, name: str, min_scale: int) -> None:
    definition = {
        "name": name,
        "image": IMAGE,
        "script": SCRIPT,
        "cpu": "1",
        "memory": "256Mi",
        "synchronous": {"min_scale": min_scale, "max_scale": min_scale},
    }
    with server.client() as client:
        client.post("/system/services", json=definition).raise_for_status()
    time.sleep(3)  # let the pool start its containers


def report(name: str, samples: list[float]) -> dict[str, float]:
    p50, p95 = percentile(samples, 0.5), percentile(samples, 0.95)
    print(f"{name:<28} p50 {p50 * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms")
    return {"p50": p50, "p95": p95, "mean": statistics.fmean(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--baseline-src", help="src/ of a baseline tree, measured alongside")
    options = parser.parse_args()
    client = docker.from_env()
    with tempfile.TemporaryDirectory(prefix="bench-run-") as temporary:
        root = Path(temporary)
        server = start_server(root / "data", env={"OSCAR_LOG_LEVEL": "WARNING"})
        baseline = None
        if options.baseline_src:
            baseline = start_server(
                root / "baseline",
                env={"OSCAR_LOG_LEVEL": "WARNING", "PYTHONPATH": options.baseline_src},
            )
        bare = BareExec(client, root / "bare", 4)
        try:
            calls: dict[str, Callable[[], None]] = {}
            for name, running in (("/run (warm pool)", server), ("/run (baseline tree)", baseline)):
                if running is not None:
                    create_service(running, "bench-one", 1)
                    create_service(running, "bench-four", 4)
                    calls[name] = run_call(running, "bench-one")
            calls["docker exec (CLI)"] = bare.cli()
            calls["exec via Engine API"] = bare.api()
            print(f"{options.requests} sequential requests each, in turns, after 10 warm-up ones")
            print("load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            samples = measure(calls, options.requests)
            figures = {name: report(name, values) for name, values in samples.items()}
            run, cli = figures["/run (warm pool)"], figures["docker exec (CLI)"]
            api = figures["exec via Engine API"]
            print(f"p50 ratio /run : docker exec CLI = {run['p50'] / cli['p50']:.2f}")
            print(f"p95 ratio /run : docker exec CLI = {run['p95'] / cli['p95']:.2f}")
            print(f"p50 ratio /run : Engine API exec = {run['p50'] / api['p50']:.2f}")
            if baseline is not None:
                base = figures["/run (baseline tree)"]
                print(f"p50 ratio /run : baseline tree = {run['p50'] / base['p50']:.2f}")
                print(f"p95 ratio /run : baseline tree = {run['p95'] / base['p95']:.2f}")
                print(f"mean ratio /run : baseline tree = {run['mean'] / base['mean']:.2f}")
            print(f"{CLIENTS} concurrent clients for {options.seconds:g} s, 4 warm containers")
            clients = [run_call(server, "bench-four") for _ in range(CLIENTS)]
            base_clients = (
                [run_call(baseline, "bench-four") for _ in range(CLIENTS)] if baseline else []
            )
            # Two rounds each, alternating, for the same reason as above.
            run_rate = cli_rate = base_rate = 0.0
            for _ in range(2):
                run_rate += throughput(clients, options.seconds / 2) / 2
                cli_rate += (
                    throughput([bare.cli(i % 4) for i in range(CLIENTS)], options.seconds / 2) / 2
                )
                if base_clients:
                    base_rate += throughput(base_clients, options.seconds / 2) / 2
            print(f"/run (min_scale 4)           {run_rate:7.1f} requests/s")
            print(f"docker exec CLI (4 containers) {cli_rate:5.1f} requests/s")
            if base_clients:
                print(f"/run, baseline tree          {base_rate:7.1f} requests/s")
            print(f"throughput ratio /run : docker exec CLI = {run_rate / cli_rate:.2f}")
        finally:
            bare.remove()
            server.stop()
            if baseline is not None:
                baseline.stop()


if __name__ == "__main__":
    main()
