"""The positional forms of the file commands and how results are decoded."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from oscarpy.cli.client import JobInfo
from oscarpy.cli.errors import UsageError
from oscarpy.cli.files import _split_provider, default_path, plan_uploads
from oscarpy.cli.services import _decode_result, count_states
from oscarpy.cli.transfers import looks_like_provider, split_remote

SERVICE = {
    "name": "svc",
    "input": [{"storage_provider": "minio.default", "path": "svc/in"}],
    "output": [
        {"storage_provider": "minio.default", "path": "svc/out"},
        {"storage_provider": "s3.aws", "path": "results/svc"},
    ],
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("minio", True),
        ("minio.default", True),
        ("s3.aws", True),
        ("photo.jpg", False),
        ("bucket/key", False),
        ("s3.", False),
    ],
)
def test_provider_names_are_told_from_paths(value: str, expected: bool) -> None:
    assert looks_like_provider(value) is expected


def test_optional_leading_provider(tmp_path: Path) -> None:
    assert _split_provider(["minio.default", "a.txt"], 2) == ("minio.default", ["a.txt"])
    assert _split_provider(["a.txt", "svc/in/"], 2) == (None, ["a.txt", "svc/in/"])
    assert _split_provider(["s3.aws", "a.txt", "b/c"], 2) == ("s3.aws", ["a.txt", "b/c"])
    with pytest.raises(UsageError, match="not a storage provider"):
        _split_provider(["x", "a.txt", "b/c"], 2)


def test_defaults_come_from_first_input_or_output_or_the_named_provider() -> None:
    assert default_path(SERVICE, "input", None).path == "svc/in"
    assert default_path(SERVICE, "output", None).path == "svc/out"
    assert default_path(SERVICE, "output", "s3.aws").path == "results/svc"
    with pytest.raises(UsageError, match="no output path for provider 'minio.other'"):
        default_path(SERVICE, "output", "minio.other")


def test_split_remote_needs_a_bucket() -> None:
    assert split_remote("/bucket/a/b.txt") == ("bucket", "a/b.txt")
    assert split_remote("bucket") == ("bucket", "")


def test_directory_uploads_keep_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("a")
    (tmp_path / "d" / "sub" / "b.txt").write_text("b")

    uploads = plan_uploads(tmp_path / "d", "svc", "in", remote_is_folder=True)

    assert [upload.key for upload in uploads] == ["in/a.txt", "in/sub/b.txt"]


def test_file_upload_into_a_folder_or_as_a_key(tmp_path: Path) -> None:
    file = tmp_path / "a.txt"
    file.write_text("a")

    assert plan_uploads(file, "svc", "in", remote_is_folder=True)[0].key == "in/a.txt"
    assert plan_uploads(file, "svc", "in/b.txt", remote_is_folder=False)[0].key == "in/b.txt"


def test_base64_answers_are_decoded_and_text_answers_kept() -> None:
    assert _decode_result(base64.b64encode(b"\x00binary")) == b"\x00binary"
    assert _decode_result(b"< Moo >\n") == b"< Moo >\n"


def test_state_counts_accept_any_case() -> None:
    jobs = [
        JobInfo("a", "Succeeded"),
        JobInfo("b", "failed"),
        JobInfo("c", "Running"),
        JobInfo("d", "Pending"),
        JobInfo("e", "cancelled"),
    ]

    assert count_states(jobs) == {"pending": 1, "running": 1, "succeeded": 1, "failed": 2}
