"""How long registering a service takes, against an authenticated no-op request on the same server.

OSCAR restarts MinIO (about 6 s) to register a service's bucket notifications; in oscar-py a
registration is a database write plus any missing bucket and folder. The baseline is
`GET /system/info` (HTTP, Basic credentials, no storage), measured in the same run, so the ratio
says what a registration costs beyond a round trip.

    python -m bench.service_registration [--count 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from tests.support.server import start_server


def _timed(client: httpx.Client, method: str, path: str, **options: object) -> float:
    started = time.perf_counter()
    answer = client.request(method, path, **options)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    answer.raise_for_status()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="registrations to measure")
    count = parser.parse_args().count
    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as directory:
        server = start_server(Path(directory) / "data", env={"OSCAR_LOG_LEVEL": "WARNING"})
        try:
            with server.client() as client:
                for _ in range(10):  # warm up connections and caches
                    _timed(client, "GET", "/system/info")
                baseline, create, read_back, delete = [], [], [], []
                for index in range(count):
                    name = f"bench-{index}"
                    body = {
                        "name": name,
                        "image": "busybox",
                        "script": "echo",
                        "input": [{"path": f"{name}/in"}],
                        "output": [{"path": f"{name}/out"}],
                    }
                    baseline.append(_timed(client, "GET", "/system/info"))
                    create.append(_timed(client, "POST", "/system/services", json=body))
                    # Usable at once: no restart, no eventual consistency.
                    read_back.append(_timed(client, "GET", f"/system/services/{name}"))
                for index in range(count):
                    delete.append(_timed(client, "DELETE", f"/system/services/bench-{index}"))
        finally:
            server.stop()
    floor = statistics.median(baseline)
    print(f"{count} services; baseline GET /system/info median {floor * 1000:.1f} ms")
    for label, samples in (
        ("POST /system/services (2 folders)", create),
        ("GET /system/services/{name} right after", read_back),
        ("DELETE /system/services/{name}", delete),
    ):
        median = statistics.median(samples)
        print(f"{label:42s} median {median * 1000:6.1f} ms = {median / floor:5.1f}x baseline")
    print(f"OSCAR's MinIO restart (~6 s) would be {6 / floor:,.0f}x baseline")


if __name__ == "__main__":
    main()
