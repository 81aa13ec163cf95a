"""Corpora of service definitions.

Malformed ones: each FDL file is refused by `oscar apply` with an error naming the problem, each
JSON body by `POST /system/services` with a 400 naming it, and none of them registers anything.

OSCAR's own: FDL files written here that use every field and storage provider the examples of
OSCAR's repository use (read there, not copied), each accepted as OSCAR accepts it, with a
warning for each setting oscar-py cannot honour; those with an input run on the local image.
"""

from __future__ import annotations

import json
import re
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
    # What OSCAR's own tools refuse too (oscar-cli cannot load the file or its script).
    (
        "a placeholder list as a variable's value",
        _fdl(_GOOD + "environment:\n  variables:\n    AWS_ACCESS_KEY_ID: [your_key]"),
        ["variables.AWS_ACCESS_KEY_ID"],
    ),
    ("no script at all", _fdl(f"name: broken\nimage: {TEST_IMAGE}"), ["script", "required"]),
    # A provider oscar-py cannot reach is refused when applied, never failed when a job runs.
    (
        "input on rucio",
        _fdl(_GOOD + "input:\n- storage_provider: rucio.r\n  path: scope/in")
        + "storage_providers:\n  rucio:\n    r:\n      host: h\n      refresh_token: t\n",
        ["input[0].storage_provider", "Rucio storage is not supported"],
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
            detail = answer.text
            for word in words:
                assert word in detail, f"{case}: {word!r} not in {detail!r}"


# -- OSCAR's own FDLs ------------------------------------------------------------------------

_ECHO = '#!/bin/sh\necho "$GREETING ${INPUT_FILE_PATH:-no file}"\n'

#: (case, FDL text with {image}, the keys warned about in order, settings kept as given)
OSCAR_CORPUS: list[tuple[str, str, list[str], dict[str, object]]] = [
    (
        "plain service on minio with the usual fields",
        """functions:
  oscar:
  - oscar-cluster:
      name: corpus-plain
      memory: 64Mi
      cpu: '0.1'
      image: {image}
      script: script.sh
      log_level: CRITICAL\t\t
      environment:
        Variables:
          GREETING: hello
          SEND_SNS: false
          EMPTY:
        secrets:
          TOKEN: s3cr3t
      input:
      - storage_provider: minio
        path: corpus-plain/input
      output:
      - storage_provider: minio.default
        path: corpus-plain/output
""",
        [],
        {"log_level": "CRITICAL"},
    ),
    (
        "exposed service with every expose key",
        """functions:
  oscar:
  - oscar-cluster:
      name: corpus-exposed
      memory: 64Mi
      cpu: '0.1'
      image: {image}
      script: script.sh
      expose:
        min_scale: 1
        max_scale: 3
        api_port: 8888
        cpu_threshold: 90
        rewrite_target: true
        default_command: true
        set_auth: true
        health_path: /health
""",
        [],
        {"expose": {"api_port": 8888, "set_auth": True, "health_path": "/health"}},
    ),
    (
        "mount, volume and rclone options",
        """functions:
  oscar:
  - oscar-cluster:
      name: corpus-mounted
      memory: 64Mi
      cpu: '0.1'
      image: {image}
      script: script.sh
      mount:
        storage_provider: minio.default
        path: corpus-mounted/models
      volume:
        size: 1Gi
        mount_path: /data
      input:
      - storage_provider: minio.default
        path: corpus-mounted/input
        options: --vfs-cache-mode full
""",
        ["volume", "input[0].options"],
        {"volume": {"size": "1Gi", "mount_path": "/data"}},
    ),
    (
        "kserve inference and llm inference settings",
        """functions:
  oscar:
  - oscar-kserve:
      name: corpus-kserve
      memory: 64Mi
      cpu: '0.1'
      image: {image}
      alpine: false
      script: script.sh
      kserve:
        type: inference
        storage_uri: hf://org/model
        api_version: v2
        min_scale: 1
        cpu: '2.0'
        memory: 6Gi
        args: [--dtype=auto]
        env:
          CACHE: "1"
        inference:
          model_format: onnx
        llm_inference:
          runtime_image: vllm
""",
        ["kserve"],
        {
            "kserve": {
                "type": "inference",
                "storage_uri": "hf://org/model",
                "args": ["--dtype=auto"],
            }
        },
    ),
    (
        "replicas with the file's clusters and an external minio",
        """functions:
  oscar:
  - oscar-eu:
      name: corpus-replicated
      memory: 64Mi
      cpu: '0.1'
      image: {image}
      script: script.sh
      log_level: DEBUG
      replicas:
      - type: oscar
        cluster_id: oscar-us
        service_name: corpus-replicated
      input:
      - storage_provider: minio
        path: corpus-replicated/input
      output:
      - storage_provider: minio.default
        path: corpus-replicated/output
clusters:
  oscar-us:
    endpoint:
    auth_user:
    auth_password:
    ssl_verify: true
    memory: 256Mi
storage_providers:
  minio:
    oscar-us:
      endpoint:
      region:
      access_key:
      secret_key:
      verify: True
""",
        ["clusters", "replicas"],
        {"replicas": [{"type": "oscar", "cluster_id": "oscar-us"}]},
    ),
    (
        "interLink node, its annotations, VO and allowed users",
        """functions:
  oscar:
  - oscar-cluster:
      name: corpus-interlink
      memory: 64Mi
      cpu: '0.1'
      image: {image}
      script: script.sh
      vo: vo.example.eu
      allowed_users:
      - 0123456789@egi.eu
      interlink_node_name: vega-new-vk
      annotations:
        slurm-job.vk.io/flags: "--job-name=test -t 10"
        job.vk.io/singularity-mounts: --bind /tmp:/tmp
""",
        ["vo", "interlink_node_name"],
        {"annotations": {"slurm-job.vk.io/flags": "--job-name=test -t 10"}},
    ),
    (
        "file_stage_in runs without downloading",
        """functions:
  oscar:
  - oscar-cluster:
      name: corpus-nostage
      memory: 64Mi
      cpu: '0.1'
      image: {image}
      script: script.sh
      file_stage_in: true
      environment:
        variables:
          GREETING: event-only
      input:
      - storage_provider: minio.default
        path: corpus-nostage/input
""",
        [],
        {"file_stage_in": True},
    ),
]


@pytest.fixture(scope="module")
def oscar_server(
    tmp_path_factory: pytest.TempPathFactory, docker_client: object
) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("oscar-corpus") / "data")
    yield running
    running.stop()
    assert "Traceback" not in running.log()


@pytest.fixture(scope="module")
def oscar_home(tmp_path_factory: pytest.TempPathFactory, oscar_server: RunningServer) -> Path:
    path = tmp_path_factory.mktemp("oscar-corpus-home")
    add_cluster(path, oscar_server)
    return path


def _contains(shown: object, given: object) -> bool:
    """Whether every key and item of `given` is in `shown` (a kept setting, perhaps completed)."""
    if isinstance(given, dict):
        return isinstance(shown, dict) and all(
            _contains(shown.get(key), value) for key, value in given.items()
        )
    if isinstance(given, list):
        return isinstance(shown, list) and all(
            _contains(item, value) for item, value in zip(shown, given, strict=False)
        )
    return shown == given


@pytest.mark.docker
@pytest.mark.parametrize(
    ("case", "text", "warned", "kept"), OSCAR_CORPUS, ids=[case for case, *_ in OSCAR_CORPUS]
)
def test_an_fdl_as_oscar_users_write_them_is_accepted_and_runs(
    oscar_server: RunningServer,
    oscar_home: Path,
    tmp_path: Path,
    case: str,
    text: str,
    warned: list[str],
    kept: dict[str, object],
) -> None:
    (tmp_path / "script.sh").write_text(_ECHO)
    fdl = tmp_path / "fdl.yaml"
    fdl.write_text(text.replace("{image}", TEST_IMAGE))
    applied = run_cli(oscar_home, "apply", str(fdl))
    assert applied.returncode == 0, f"{case}: {applied.stderr}"
    warnings = [line for line in applied.stderr.splitlines() if line.startswith("warning:")]
    named = [line.split(": ", 3)[2].rsplit(".", 1)[-1] for line in warnings]
    assert named == [key.rsplit(".", 1)[-1] for key in warned], f"{case}: {warnings}"

    name = re.search(r"name: (\S+)", text).group(1)  # type: ignore[union-attr]
    with oscar_server.client() as client:
        shown = client.get(f"/system/services/{name}").json()
    for key, value in kept.items():
        assert _contains(shown.get(key), value), f"{case}: {key} = {shown.get(key)!r}"
    if not shown["input"]:
        return
    path = shown["input"][0]["path"]
    bucket, _, folder = path.partition("/")
    oscar_server.s3_client().put_object(Bucket=bucket, Key=f"{folder}/file.txt", Body=b"x")
    waited = run_cli(oscar_home, "service", "wait", name, "--expect", "1", "--timeout", "90")
    assert waited.returncode == 0, f"{case}: {waited.stderr}"
    log = run_cli(oscar_home, "service", "logs", "get", name).stdout
    greeting = shown["environment"]["variables"].get("GREETING", "")
    if shown.get("file_stage_in"):
        assert f"{greeting} no file" in log, log
    else:
        assert f"{greeting} /oscar-job/input/file.txt" in log, log
