"""Where a fresh-container job's CPU goes: CPU time per 1 KiB copy job, by process, for a loop
of bare `docker run` and for the platform (and a baseline tree's server), in the same run.

    .venv/bin/python -m bench.jobs_cpu [--jobs 40] [--rounds 2] [--baseline-src /tmp/base/src]

On this 2-core machine the jobs are CPU-bound, so CPU per job is what decides throughput, and
it is steadier under a varying load than wall time. Columns, in ms of CPU per job: `dockerd`
and `containerd` (the daemons), `cli` (the `docker` CLI processes: the bare loop's client),
`server` (the `oscar serve` process tree: the platform's client), `machine` (every CPU of the
machine busy, /proc/stat: the kernel's and the runtimes' share of a container start, shims and
runc, and whatever else runs; compare it between rows of one run only).
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import tempfile
from collections.abc import Callable
from pathlib import Path

import psutil

from bench.jobs_support import IMAGE, add_baseline_option, stop_all, tree_servers
from bench.jobs_throughput import bare_round, platform_round

COLUMNS = ("dockerd", "containerd", "cli", "server", "machine")


def process_cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def machine_busy() -> float:
    """CPU seconds every core of the machine has spent busy since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds so far of the processes in `COLUMNS`; `server` is the one being measured."""

    def __init__(self) -> None:
        daemons = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["dockerd"]]
        if not daemons:
            raise SystemExit("no `dockerd` without arguments runs here (the default daemon)")
        self.dockerd = daemons[0]
        self.containerd = [c for c in self.dockerd.children() if c.name() == "containerd"]

    def read(self, server: psutil.Process | None) -> dict[str, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        tree = [] if server is None else [server, *server.children(recursive=True)]
        return {
            "dockerd": process_cpu(self.dockerd),
            "containerd": sum(process_cpu(c) for c in self.containerd),
            "cli": children.ru_utime + children.ru_stime,
            "server": sum(process_cpu(p) for p in tree),
            "machine": machine_busy(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40, help="per round and contender")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    add_baseline_option(parser)
    options = parser.parse_args()
    meter = CpuMeter()
    used: dict[str, dict[str, float]] = {}

    def measure(name: str, server: psutil.Process | None, action: Callable[[], object]) -> None:
        before = meter.read(server)
        action()
        after = meter.read(server)
        totals = used.setdefault(name, dict.fromkeys(COLUMNS, 0.0))
        for column in COLUMNS:
            totals[column] += after[column] - before[column]

    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as temporary:
        root = Path(temporary)
        servers = tree_servers(root, options.baseline_src)
        try:
            for running in servers.values():
                running.create_service(
                    {
                        "name": "cpu",
                        "image": IMAGE,
                        "cpu": "0.1",
                        "memory": "32Mi",
                        "max_concurrency": options.concurrency,
                        "script": 'cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"\n',
                        "input": [{"path": "throughput/in"}],
                        "output": [{"path": "throughput/out"}],
                    }
                )
            for round_number in range(options.rounds):
                first = round_number * options.jobs
                measure(
                    "bare docker run",
                    None,
                    functools.partial(
                        bare_round, root / "bare", options.concurrency, first, options.jobs
                    ),
                )
                for name, running in servers.items():
                    process = psutil.Process(running.process.pid)
                    measure(
                        name,
                        process,
                        functools.partial(
                            platform_round, running, running.s3_client(), first, options.jobs
                        ),
                    )
        finally:
            stop_all(servers)
    jobs = options.jobs * options.rounds
    load = os.getloadavg()
    print(f"{jobs} jobs per contender, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'ms of CPU per job':18}" + "".join(f"{column:>12}" for column in COLUMNS))
    for name, totals in used.items():
        print(f"{name:18}" + "".join(f"{totals[c] / jobs * 1000:12.0f}" for c in COLUMNS))


if __name__ == "__main__":
    main()
