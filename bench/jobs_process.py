"""The per-job path without containers: 1 KiB files through a copy script on `oscar serve
--runtime process`, files/s end to end at concurrency 4, this tree against another source tree
(the baseline, e.g. `git archive main src | tar -x -C /tmp/base`) in the same run.

    .venv/bin/python -m bench.jobs_process --baseline-src /tmp/base/src [--files 300]

With no container, what is left is the platform's own cost per job (state DB commits, staging,
the script's process), which warm containers pay too. Rounds alternate between the two servers
so that a change in the machine's load hits both alike. Besides files/s, each server's own CPU
time per file is read from `/proc` (its scripts' CPU not included): on a shared, loaded machine
that figure moves much less than the wall clock.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench.jobs_support import stop_all, tree_servers
from bench.jobs_throughput import COPY, platform_round
from bench.s3_throughput import cpu_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", required=True, help="src/ of the baseline tree")
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    per_round = options.files // options.rounds
    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as temporary:
        servers = tree_servers(Path(temporary), options.baseline_src, ["--runtime", "process"])
        seconds = dict.fromkeys(servers, 0.0)
        cpu = dict.fromkeys(servers, 0.0)
        try:
            for running in servers.values():
                running.create_service(
                    {
                        "name": "throughput",
                        "image": "unused",
                        "max_concurrency": options.concurrency,
                        "script": COPY,
                        "input": [{"path": "throughput/in"}],
                        "output": [{"path": "throughput/out"}],
                    }
                )
            clients = {name: running.s3_client() for name, running in servers.items()}
            for round_number in range(options.rounds):
                first = round_number * per_round
                for name, running in servers.items():
                    before = cpu_seconds(running.process.pid)
                    seconds[name] += platform_round(running, clients[name], first, per_round)
                    cpu[name] += cpu_seconds(running.process.pid) - before
        finally:
            stop_all(servers)
    files = per_round * options.rounds
    load = os.getloadavg()
    print(f"files {files} per tree in {options.rounds} alternating rounds")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (noisy: a shared machine)")
    for name in servers:
        per_file = cpu[name] / files * 1000
        print(f"{name:13}: {files / seconds[name]:.2f} files/s, server CPU {per_file:.1f} ms/file")
    base, this = "baseline tree", "this tree"
    print(f"ratio this tree / baseline: {seconds[base] / seconds[this]:.2f} files/s")
    print(f"baseline / this tree: {cpu[base] / cpu[this]:.2f} server CPU per file")


if __name__ == "__main__":
    main()
