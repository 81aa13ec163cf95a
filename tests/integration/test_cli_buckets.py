"""`oscar bucket …` against a real server: the verbs oscar-cli has (`list`, `get`) print what
it prints, and the others (create, share, delete, presign) go through `/system/buckets`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.cli import run_cli
from tests.support.server import RunningServer


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, wire_server: RunningServer) -> Path:
    made = tmp_path_factory.mktemp("cli-buckets-home")
    added = run_cli(made, "cluster", "add", "test", wire_server.url, "oscar", wire_server.password)
    assert added.returncode == 0, added.stderr
    return made


def oscar(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(home, *args, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def test_bucket_verbs(home: Path, wire_server: RunningServer) -> None:
    oscar(home, "bucket", "create", "cli-made/inbox", "--visibility", "restricted", "-u", "ann")
    listed = json.loads(oscar(home, "bucket", "list", "-o", "json").stdout)
    made = next(item for item in listed if item["bucket_name"] == "cli-made")
    assert (made["visibility"], made["allowed_users"]) == ("restricted", ["ann"])
    table = oscar(home, "bucket", "ls").stdout
    assert "cli-made" in table and "restricted" in table and "cluster_admin" in table

    s3 = wire_server.s3_client()
    for index in range(3):
        s3.put_object(Bucket="cli-made", Key=f"inbox/{index}.txt", Body=b"12345")
    first = oscar(home, "bucket", "get", "cli-made", "--limit", "2")
    assert "inbox/0.txt" in first.stdout and "inbox/2.txt" not in first.stdout
    assert "--page" in first.stderr
    every = json.loads(
        oscar(home, "bucket", "get", "cli-made", "--limit", "2", "--all", "-o", "json").stdout
    )
    names = [item["object_name"] for item in every["objects"]]
    assert names[-3:] == ["inbox/0.txt", "inbox/1.txt", "inbox/2.txt"]

    oscar(home, "bucket", "share", "cli-made", "--visibility", "public")
    url = oscar(home, "bucket", "presign", "cli-made", "inbox/1.txt").stdout.strip()
    assert httpx.get(url).content == b"12345"
    oscar(home, "bucket", "delete", "cli-made", "--yes")
    missing = run_cli(home, "bucket", "get", "cli-made")
    assert missing.returncode != 0 and "does not exist" in missing.stderr
