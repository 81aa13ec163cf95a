"""The many-files run: N files of 1 KiB (default 10,000) through a copy script on a warm service
(`warm_jobs`), files/s end to end, the server's CPU seconds per file, its resident memory over
the run, and a check that every file was processed exactly once.

    .venv/bin/python -m bench.jobs_many [--files 10000] [--concurrency 4] [--uploaders 8]

`--concurrency` is the service's `max_concurrency` and its number of warm containers. Every file
has its own content; at the end each upload must have exactly one job, succeeded at its first
attempt, and exactly one output whose content equals its input. Memory is sampled twice a
second and shown at every thousandth finished file: it must stay flat, not grow with the count.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from tests.support.server import RunningServer

from bench.jobs_support import IMAGE, server, warm_fields
from bench.jobs_throughput import COPY

SERVICE = "many"
FILE_SIZE = 1024
_FINISHED = re.compile(
    r'^oscar_jobs_finished_total\{service="many",status="(\w+)"\} ([0-9.e+]+)$', re.M
)


def content(index: int) -> bytes:
    """1 KiB that only file `index` has."""
    head = f"file {index:06}\n".encode()
    return head + b"x" * (FILE_SIZE - len(head))


def key(index: int) -> str:
    return f"{index:06}.bin"


def finished_jobs(running: RunningServer) -> dict[str, int]:
    """Jobs of the service that reached a final status, by status, from `/metrics`."""
    with running.client() as client:
        answer = client.get("/metrics")
        answer.raise_for_status()
    return {status: int(float(count)) for status, count in _FINISHED.findall(answer.text)}


@dataclass
class Sampler:
    """Samples the server's resident memory with the number of finished files."""

    process: psutil.Process
    running: RunningServer
    samples: list[tuple[int, int]] = field(default_factory=list)
    """(finished files, RSS bytes)"""
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.sample()

    def sample(self) -> int:
        finished = sum(finished_jobs(self.running).values())
        self.samples.append((finished, self.process.memory_info().rss))
        return finished


def upload_all(s3: Any, files: int, uploaders: int) -> None:
    with ThreadPoolExecutor(uploaders) as pool:
        list(
            pool.map(
                lambda index: s3.put_object(
                    Bucket=SERVICE, Key=f"in/{key(index)}", Body=content(index)
                ),
                range(files),
            )
        )


def check_exactly_once(running: RunningServer, s3: Any, files: int) -> None:
    """One job per upload, each succeeded at its first attempt; one output per input, equal."""
    expected = {f"in/{key(index)}" for index in range(files)}
    jobs: list[dict[str, Any]] = []
    page = ""
    with running.client() as client:
        while True:
            answer = client.get(f"/system/logs/{SERVICE}", params={"limit": 1000, "page": page})
            answer.raise_for_status()
            body = answer.json()
            jobs.extend(body["jobs"].values())
            page = body["next_page"]
            if not page:
                break
    job_keys = [job["key"] for job in jobs]
    if len(job_keys) != files or set(job_keys) != expected:
        raise RuntimeError(f"{len(job_keys)} jobs for {files} uploads ({len(set(job_keys))} keys)")
    unlike = [job for job in jobs if job["status"] != "Succeeded" or job["attempts"] != 1]
    if unlike:
        raise RuntimeError(f"{len(unlike)} job(s) not succeeded at the first attempt: {unlike[0]}")
    outputs: list[str] = []
    for listed in s3.get_paginator("list_objects_v2").paginate(Bucket=SERVICE, Prefix="out/"):
        # "out/" itself is the folder marker made with the service.
        outputs.extend(item["Key"] for item in listed.get("Contents", []) if item["Key"] != "out/")
    if sorted(outputs) != sorted(f"out/{key(index)}" for index in range(files)):
        raise RuntimeError(f"{len(outputs)} outputs for {files} inputs")

    def differs(index: int) -> bool:
        body = s3.get_object(Bucket=SERVICE, Key=f"out/{key(index)}")["Body"].read()
        return bool(body != content(index))

    with ThreadPoolExecutor(8) as pool:
        wrong = sum(pool.map(differs, range(files)))
    if wrong:
        raise RuntimeError(f"{wrong} output(s) differ from their input")


def rss_at_marks(samples: list[tuple[int, int]], files: int) -> list[tuple[int, int]]:
    """The first sample at or past each thousandth finished file (each tenth of a short run)."""
    step = 1000 if files >= 2000 else max(1, files // 10)
    marks = []
    for mark in range(step, files + 1, step):
        at = next((rss for finished, rss in samples if finished >= mark), None)
        if at is not None:
            marks.append((mark, at))
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--uploaders", type=int, default=8, help="threads that PUT the files")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as temporary:
        running = server(Path(temporary) / "data")
        try:
            running.create_service(
                {
                    "name": SERVICE,
                    "image": IMAGE,
                    "cpu": "0.1",
                    "memory": "32Mi",
                    "max_concurrency": options.concurrency,
                    "script": COPY,
                    "input": [{"path": f"{SERVICE}/in"}],
                    "output": [{"path": f"{SERVICE}/out"}],
                    **warm_fields(True, options.concurrency),
                },
            )
            s3 = running.s3_client()
            process = psutil.Process(running.process.pid)
            sampler = Sampler(process, running)
            rss_before = process.memory_info().rss
            cpu_before = sum(process.cpu_times()[:4])
            started = time.monotonic()
            threading.Thread(target=sampler.run, daemon=True).start()
            upload_all(s3, options.files, options.uploaders)
            uploaded = time.monotonic() - started
            while sampler.sample() < options.files:
                time.sleep(0.2)
            elapsed = time.monotonic() - started
            sampler.done.set()
            cpu = sum(process.cpu_times()[:4]) - cpu_before
            statuses = finished_jobs(running)
            check_exactly_once(running, s3, options.files)
        finally:
            running.stop()
    files = options.files
    rss = [rss for _, rss in sampler.samples]
    print(f"files {files} of {FILE_SIZE} B, concurrency {options.concurrency}, warm_jobs")
    print(f"uploads done after {uploaded:.1f} s; last job finished after {elapsed:.1f} s")
    print(f"throughput      : {files / elapsed:.2f} files/s end to end")
    print(f"server CPU      : {cpu:.1f} s, {cpu / files * 1000:.1f} ms per file")
    print(f"RSS before      : {rss_before / 2**20:.1f} MiB; peak {max(rss) / 2**20:.1f} MiB")
    marks = rss_at_marks(sampler.samples, files)
    print("RSS (MiB) at finished files " + ", ".join(f"{n}: {at / 2**20:.1f}" for n, at in marks))
    load = os.getloadavg()
    print(f"jobs by status  : {statuses}; every file processed exactly once: yes")
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
