"""The AWS CLI (`aws s3 ...`) against a real `oscar serve`: cp (multipart over the threshold),
sync both ways, ls, rm, rb."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.test_s3_support import s3_server  # noqa: F401
from tests.support.server import RunningServer

AWS = str(Path(sys.executable).with_name("aws"))
MiB = 1024 * 1024


def aws(server: RunningServer, tmp_path: Path, *arguments: str) -> str:
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = us-east-1\n")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": server.username,
        "AWS_SECRET_ACCESS_KEY": server.password,
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }
    done = subprocess.run(
        [AWS, "--endpoint-url", server.s3_url, *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"aws {' '.join(arguments)} failed:\n{done.stderr}"
    return done.stdout


def test_aws_s3_cp_sync_ls_rm(s3_server: RunningServer, tmp_path: Path) -> None:  # noqa: F811
    aws(s3_server, tmp_path, "s3", "mb", "s3://cli")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * MiB))  # over the 8 MiB multipart threshold
    aws(s3_server, tmp_path, "s3", "cp", str(big), "s3://cli/uploads/big.bin")
    back = tmp_path / "big-back.bin"
    aws(s3_server, tmp_path, "s3", "cp", "s3://cli/uploads/big.bin", str(back))
    assert back.read_bytes() == big.read_bytes()
    head = aws(
        s3_server, tmp_path, "s3api", "head-object", "--bucket", "cli", "--key", "uploads/big.bin"
    )
    assert '-2\\"' in head  # a multipart ETag: 8 MiB + 4 MiB parts

    tree = tmp_path / "tree"
    for relative in ["a.txt", "sub/b.txt", "sub/deeper/c.txt", "with space.txt"]:
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        (tree / relative).write_text(relative)
    aws(s3_server, tmp_path, "s3", "sync", str(tree), "s3://cli/tree")
    listing = aws(s3_server, tmp_path, "s3", "ls", "--recursive", "s3://cli/tree/")
    assert sorted(line.split(maxsplit=3)[3] for line in listing.splitlines()) == [
        "tree/a.txt",
        "tree/sub/b.txt",
        "tree/sub/deeper/c.txt",
        "tree/with space.txt",
    ]
    top = aws(s3_server, tmp_path, "s3", "ls", "s3://cli/tree/")
    assert "PRE sub/" in top and "a.txt" in top
    # A second sync has nothing to do; after a change it uploads only that file.
    assert aws(s3_server, tmp_path, "s3", "sync", str(tree), "s3://cli/tree") == ""
    (tree / "a.txt").write_text("changed, and longer than before")
    again = aws(s3_server, tmp_path, "s3", "sync", str(tree), "s3://cli/tree")
    assert again.count("upload:") == 1 and "a.txt" in again

    copy = tmp_path / "copy"
    aws(s3_server, tmp_path, "s3", "sync", "s3://cli/tree", str(copy))
    for path in tree.rglob("*"):
        if path.is_file():
            assert (copy / path.relative_to(tree)).read_text() == path.read_text()

    aws(s3_server, tmp_path, "s3", "rm", "s3://cli/tree/a.txt")
    aws(s3_server, tmp_path, "s3", "rm", "--recursive", "s3://cli/tree/sub")
    remaining = aws(s3_server, tmp_path, "s3", "ls", "--recursive", "s3://cli/tree/")
    assert [line.split(maxsplit=3)[3] for line in remaining.splitlines()] == ["tree/with space.txt"]
    aws(s3_server, tmp_path, "s3", "rb", "--force", "s3://cli")
    assert "cli" not in aws(s3_server, tmp_path, "s3", "ls").split()
