"""An FDL names its script by path: whoever reads that path must not read files the FDL's
author may not. An FDL uploaded to the dashboard can only carry inline scripts (the server
reads none of its own files for it, and its answer tells nothing about them); `oscar apply`
reads scripts only beside the FDL unless `--allow-any-script-path` says otherwise."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.cli import add_cluster, run_cli
from tests.support.dashboard import sign_in
from tests.support.server import RunningServer

SECRET = "root-only-secret-7f3a\n"


def _fdl(name: str, script: str) -> str:
    return (
        f"functions:\n  oscar:\n  - local:\n      name: {name}\n      image: busybox\n"
        f"      script: {script}\n"
    )


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "shadow"
    path.write_text(SECRET)
    path.chmod(0o600)
    return path


def test_an_uploaded_fdl_cannot_read_a_server_file(
    server: RunningServer, secret_file: Path
) -> None:
    relative = "../" * 12 + str(secret_file).lstrip("/")
    answers = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        token = sign_in(client, server)
        for index, script in enumerate(
            [str(secret_file), relative, str(secret_file.with_name("absent"))]
        ):
            name = f"steal{index}"
            answer = client.post(
                "/ui/services/import",
                data={"csrf_token": token},
                files={"definition": ("steal.yaml", _fdl(name, script).encode())},
            )
            answers.append(answer)
            with server.client() as api:
                listed = api.get("/system/services")
            assert SECRET.strip() not in listed.text
            assert name not in {service["name"] for service in listed.json()}
    assert {answer.status_code for answer in answers} == {400}
    # A file that exists and one that does not get the same words: no probing the server's disk.
    texts = [
        answer.text.replace(str(secret_file.with_name("absent")), str(secret_file))
        for answer in answers
    ]
    assert texts[0] == texts[2]
    assert "inline" in answers[0].text


def test_an_uploaded_fdl_with_an_inline_script_still_imports(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        token = sign_in(client, server)
        answer = client.post(
            "/ui/services/import",
            data={"csrf_token": token},
            files={"definition": ("ok.yaml", _fdl("inline", "|\n        echo hi\n").encode())},
        )
    assert answer.status_code == 303, answer.text
    with server.client() as api:
        assert api.get("/system/services/inline").json()["script"] == "echo hi\n"


def test_oscar_apply_reads_scripts_only_beside_the_fdl(
    server: RunningServer, secret_file: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "script.sh").write_text("echo beside\n")
    outside = project / "outside.yaml"
    outside.write_text(_fdl("outside", str(secret_file)))
    dotdot = project / "dotdot.yaml"
    dotdot.write_text(_fdl("dotdot", "../shadow"))
    beside = project / "beside.yaml"
    beside.write_text(_fdl("beside", "script.sh"))
    home = tmp_path / "home"
    home.mkdir()
    add_cluster(home, server)

    for fdl in (outside, dotdot):
        result = run_cli(home, "apply", str(fdl))
        assert result.returncode != 0
        assert "outside" in result.stderr + result.stdout
    with server.client() as api:
        assert SECRET.strip() not in api.get("/system/services").text
    assert run_cli(home, "apply", str(beside)).returncode == 0
    allowed = run_cli(home, "apply", "--allow-any-script-path", str(dotdot))
    assert allowed.returncode == 0, allowed.stderr
    with server.client() as api:
        assert api.get("/system/services/beside").json()["script"] == "echo beside\n"
        assert api.get("/system/services/dotdot").json()["script"] == SECRET
