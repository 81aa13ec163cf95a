"""The word-count example end to end over the REST API and S3: apply, upload, wait, print.

    python examples/word-count/demo.py API_URL S3_URL USER PASSWORD [IMAGE]

Used by `scripts/demo`; any S3 client and any HTTP client would do the same.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import boto3
import httpx

from oscarpy.services.model import parse_fdl

HERE = Path(__file__).resolve().parent
TIMEOUT_SECONDS = 120


def main(api: str, s3_url: str, user: str, password: str, image: str | None) -> int:
    ((_, service),) = parse_fdl(HERE / "word-count.yaml")
    if image:
        service = service.model_copy(update={"image": image})
    definition = service.to_json()
    client = httpx.Client(base_url=api, auth=(user, password), timeout=30)
    created = client.post("/system/services", json=definition)
    if created.status_code == 409:
        client.put("/system/services", json=definition).raise_for_status()
        client.delete(f"/system/logs/{service.name}", params={"all": "true"})
    else:
        created.raise_for_status()
    print(f"service {service.name} applied (image {service.image})")

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_url,
        aws_access_key_id=user,
        aws_secret_access_key=password,
        region_name="us-east-1",
    )
    samples = sorted((HERE / "samples").glob("*.txt"))
    for sample in samples:
        s3.upload_file(str(sample), "word-count", f"input/{sample.name}")
        print(f"uploaded input/{sample.name}")

    deadline = time.monotonic() + TIMEOUT_SECONDS
    jobs: dict[str, dict[str, str]] = {}
    while time.monotonic() < deadline:
        jobs = client.get(f"/system/logs/{service.name}").json()["jobs"]
        finished = [job for job in jobs.values() if job["status"] in ("Succeeded", "Failed")]
        if len(finished) >= len(samples):
            break
        time.sleep(0.3)
    else:
        print(f"jobs did not finish within {TIMEOUT_SECONDS} s: {jobs}", file=sys.stderr)
        return 1
    failed = {job_id: job for job_id, job in jobs.items() if job["status"] != "Succeeded"}
    for job_id in failed:
        print(client.get(f"/system/logs/{service.name}/{job_id}").text, file=sys.stderr)
    print(f"{len(jobs) - len(failed)} job(s) succeeded, {len(failed)} failed\n")

    for sample in samples:
        key = f"output/{sample.stem}.count.txt"
        report = s3.get_object(Bucket="word-count", Key=key)["Body"].read().decode()
        print(f"--- word-count/{key}\n{report}")
    return 1 if failed else 0


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if len(arguments) not in (4, 5):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*arguments[:4], arguments[4] if len(arguments) == 5 else None))
