"""The link-free file operations the server uses on directories a container can write into
(`oscarpy.engine.safefs`, through `oscarpy.engine.contract`): a planted link never redirects a
write or a read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oscarpy.engine import contract, safefs
from oscarpy.engine.spec import JobSpec


def spec() -> JobSpec:
    return JobSpec("job", 1, "svc", "img", "echo hi", '{"a": 1}')


def test_a_work_directory_is_never_built_through_a_planted_link(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    planted = tmp_path / "work"
    planted.symlink_to(host)

    with pytest.raises(FileExistsError):
        contract.build_work_dir(planted, spec())

    assert list(host.iterdir()) == []


def test_a_new_file_is_never_written_through_a_link(tmp_path: Path) -> None:
    target = tmp_path / "host-file"
    target.write_text("untouched")
    (tmp_path / "event.json").symlink_to(target)
    directory = safefs.open_dir(tmp_path)
    try:
        with pytest.raises(FileExistsError):
            safefs.write_new_at(directory, "event.json", b"body", 0o644)
    finally:
        os.close(directory)
    assert target.read_text() == "untouched"


def test_the_work_directory_has_the_contract_layout(tmp_path: Path) -> None:
    body = tmp_path / "body"
    body.write_bytes(b"input")
    body.chmod(0o600)

    input_path = contract.build_work_dir(tmp_path / "work", spec(), body, link_body=True)

    work = tmp_path / "work"
    assert sorted(p.name for p in work.iterdir()) == [
        "event.json",
        "input",
        "output",
        "script.sh",
        "tmp",
    ]
    assert input_path == work / "input" / "event_file"
    assert input_path.read_bytes() == b"input" and os.stat(input_path).st_mode & 0o777 == 0o644
    assert (work / "script.sh").read_text() == "echo hi"
    assert os.stat(work / "output").st_mode & 0o7777 == 0o1777


def test_outputs_are_copied_without_following_links_at_any_depth(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("root only")
    work = tmp_path / "work"
    output = work / "output"
    (output / "sub").mkdir(parents=True)
    (output / "a.txt").write_text("A")
    (output / "sub" / "b.txt").write_text("B")
    (output / "sub" / "link").symlink_to(secret / "key")
    (output / "dir").symlink_to(secret)
    os.mkfifo(output / "pipe")
    notes: list[str] = []

    found = contract.collect_outputs(work, tmp_path / "copy", notes.append)

    assert found == ["a.txt", "sub/b.txt"]
    assert (tmp_path / "copy" / "sub" / "b.txt").read_text() == "B"
    assert sorted(notes) == [
        "skipped pipe: not a regular file",
        "skipped symbolic link dir",
        "skipped symbolic link sub/link",
    ]


def test_an_output_directory_that_is_a_link_yields_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("root only")
    work = tmp_path / "work"
    work.mkdir()
    (work / "output").symlink_to(secret)

    assert contract.collect_outputs(work, tmp_path / "copy", lambda _: None) == []
    assert list((tmp_path / "copy").iterdir()) == []
