"""The per-job path without containers: 1 KiB files through a copy script on `oscar serve
--runtime process`, files/s end to end at concurrency 4, this tree against another source tree
(the baseline, e.g. `git archive main src | tar -x -C /tmp/base`) in the same run.

    .venv/bin/python -m bench.jobs_process --baseline-src /tmp/base/src [--files 300]

With no container, what is left is the platform's own cost per job (state DB commits, staging,
the script's process), which warm containers pay too. Rounds alternate between the two servers
so that a change in the machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from tests.support.server import start_server

from bench.jobs_throughput import COPY, platform_round


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", required=True, help="src/ of the baseline tree")
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    per_round = options.files // options.rounds
    this_src = str(Path(__file__).resolve().parents[1] / "src")
    trees = {"baseline": options.baseline_src, "this tree": this_src}
    seconds = dict.fromkeys(trees, 0.0)
    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as temporary:
        root = Path(temporary)
        servers = {}
        try:
            for name, source in trees.items():
                servers[name] = start_server(
                    root / name.replace(" ", "-"),
                    env={"OSCAR_LOG_LEVEL": "WARNING", "PYTHONPATH": source},
                    args=["--runtime", "process"],
                )
                servers[name].create_service(
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
                    seconds[name] += platform_round(running, clients[name], first, per_round)
        finally:
            for running in servers.values():
                running.stop()
    files = per_round * options.rounds
    load = os.getloadavg()
    print(f"files {files} per tree in {options.rounds} alternating rounds")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (noisy: a shared machine)")
    for name in trees:
        print(f"{name:10}: {files / seconds[name]:.2f} files/s")
    print(f"ratio this tree / baseline: {seconds['baseline'] / seconds['this tree']:.2f}")


if __name__ == "__main__":
    main()
