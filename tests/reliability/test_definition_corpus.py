"""A corpus of malformed service definitions: each FDL file is refused by `oscar apply` with an
error naming the problem, each JSON body by `POST /system/services` with a 400 naming it, and
none of them registers anything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import TEST_IMAGE, add_cluster, run_cli
from tests.support.server import RunningServer, start_server


def _fdl(service_yaml: str) -> str:
    indented = "\n".join("      " + line for line in service_yaml.strip().splitlines())
    return f"functions:\n  oscar:\n  - oscar-cluster:\n{indented}\n"


_GOOD = f"name: broken\nimage: {TEST_IMAGE}\nscript: script.sh\n"

#: (case, FDL text, words the error must contain)
FDL_CORPUS = [
    ("not yaml", "functions: [oscar: {\n", ["services.yaml"]),
    ("empty file", "", ["functions"]),
    ("a list at the top", "- name: x\n", ["functions"]),
    ("no oscar section", "functions:\n  other: []\n", ["oscar"]),
    (
        "service not a mapping",
        "functions:\n  oscar:\n  - oscar-cluster: just-text\n",
        ["oscar-cluster", "settings"],
    ),
    ("no name", _fdl(f"image: {TEST_IMAGE}\nscript: script.sh"), ["name"]),
    ("bad name", _fdl(f"name: Not_Valid!\nimage: {TEST_IMAGE}\nscript: script.sh"), ["name"]),
    ("no image", _fdl("name: broken\nscript: script.sh"), ["image"]),
    (
        "script file missing",
        _fdl(f"name: broken\nimage: {TEST_IMAGE}\nscript: missing.sh"),
        ["missing.sh"],
    ),
    ("cpu not a number", _fdl(_GOOD + "cpu: lots"), ["cpu"]),
    ("memory unit unknown", _fdl(_GOOD + "memory: 12 bananas"), ["memory"]),
    ("input not a list", _fdl(_GOOD + "input: broken/in"), ["input"]),
    (
        "input without path",
        _fdl(_GOOD + "input:\n- storage_provider: minio.default"),
        ["input[0]", "path"],
    ),
    (
        "unknown provider",
        _fdl(_GOOD + "input:\n- storage_provider: minio.nowhere\n  path: bkt/in"),
        ["minio.nowhere"],
    ),
    ("variables not a mapping", _fdl(_GOOD + "environment:\n  variables: [A, B]"), ["variables"]),
    (
        "output inside input",
        _fdl(_GOOD + "input:\n- path: bkt/in\noutput:\n- path: bkt/in/out"),
        ["output[0]"],
    ),
]

#: (case, JSON body, words the 400's detail must contain)
JSON_CORPUS: list[tuple[str, object, list[str]]] = [
    ("not an object", ["name"], ["object"]),
    ("no name", {"image": TEST_IMAGE, "script": "x"}, ["name"]),
    ("name too long", {"name": "a" * 300, "image": TEST_IMAGE, "script": "x"}, ["name"]),
    ("name wrong type", {"name": 12, "image": TEST_IMAGE, "script": "x"}, ["name"]),
    ("no script", {"name": "broken", "image": TEST_IMAGE}, ["script"]),
    ("cpu negative", {"name": "broken", "image": TEST_IMAGE, "script": "x", "cpu": "-1"}, ["cpu"]),
    (
        "memory garbage",
        {"name": "broken", "image": TEST_IMAGE, "script": "x", "memory": "x"},
        ["memory"],
    ),
    (
        "input wrong type",
        {"name": "broken", "image": TEST_IMAGE, "script": "x", "input": 3},
        ["input"],
    ),
    (
        "path with ..",
        {"name": "broken", "image": TEST_IMAGE, "script": "x", "input": [{"path": "../etc"}]},
        ["input[0]"],
    ),
    (
        "secrets not strings",
        {
            "name": "broken",
            "image": TEST_IMAGE,
            "script": "x",
            "environment": {"secrets": {"A": {"b": 1}}},
        },
        ["secrets"],
    ),
    (
        "retries negative",
        {"name": "broken", "image": TEST_IMAGE, "script": "x", "retries": -2},
        ["retries"],
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("corpus") / "data")
    yield running
    try:
        with running.client() as client:
            assert client.get("/system/services").json() == []  # nothing got registered
    finally:
        running.stop()
    assert "Traceback" not in running.log()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, server: RunningServer) -> Path:
    path = tmp_path_factory.mktemp("corpus-home")
    add_cluster(path, server)
    return path


@pytest.mark.parametrize(
    ("case", "text", "words"), FDL_CORPUS, ids=[case for case, *_ in FDL_CORPUS]
)
def test_a_malformed_fdl_file_is_refused_naming_the_problem(
    home: Path, tmp_path: Path, case: str, text: str, words: list[str]
) -> None:
    (tmp_path / "script.sh").write_text("echo hi\n")
    fdl = tmp_path / "services.yaml"
    fdl.write_text(text)
    run = run_cli(home, "apply", str(fdl))
    message = run.stderr + run.stdout
    assert run.returncode != 0, message
    assert "Traceback" not in message, message
    for word in words:
        assert word in message, f"{case}: {word!r} not in {message!r}"


@pytest.mark.parametrize(
    ("case", "body", "words"), JSON_CORPUS, ids=[case for case, *_ in JSON_CORPUS]
)
def test_a_malformed_json_definition_is_400_naming_the_problem(
    server: RunningServer, case: str, body: object, words: list[str]
) -> None:
    with server.client() as client:
        for method in ("POST", "PUT"):
            answer = client.request(method, "/system/services", content=json.dumps(body))
            assert answer.status_code == 400, f"{case}: {answer.status_code} {answer.text}"
            detail = answer.json()["detail"]
            for word in words:
                assert word in detail, f"{case}: {word!r} not in {detail!r}"
