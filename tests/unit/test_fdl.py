"""FDL files as oscar-cli reads them: several services, script files, both key spellings."""

from __future__ import annotations

from pathlib import Path

import pytest

from oscarpy.services.model import ServiceDefinitionError, parse_fdl

FDL = """\
functions:
  oscar:
  - oscar-cluster:
      name: grayify
      memory: 1Gi
      cpu: '0.5'
      image: ghcr.io/grycap/imagemagick
      script: scripts/grayify.sh
      environment:
        Variables:
          QUALITY: 80
      input:
      - storage_provider: minio.default
        path: grayify/input
      output:
      - storage_provider: minio.default
        path: grayify/output
      - storage_provider: s3.aws
        path: results/gray
  - other-cluster:
      Name: thumbnail
      Image: busybox
      Script: thumb.sh
      environment:
        variables:
          SIZE: "64"
      Input:
      - Path: grayify/output
storage_providers:
  s3:
    aws:
      access_key: AKIA
      secret_key: very-secret
      region: eu-west-1
"""


def write(tmp_path: Path, text: str, scripts: dict[str, str] | None = None) -> Path:
    for name, content in (scripts or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    fdl = tmp_path / "services.yaml"
    fdl.write_text(text)
    return fdl


def test_services_of_an_oscar_cli_fdl(tmp_path: Path) -> None:
    fdl = write(tmp_path, FDL, {"scripts/grayify.sh": "#!/bin/sh\nconvert\n", "thumb.sh": "x\n"})
    services = parse_fdl(fdl)
    assert [(cluster, service.name) for cluster, service in services] == [
        ("oscar-cluster", "grayify"),
        ("other-cluster", "thumbnail"),
    ]
    grayify, thumbnail = services[0][1], services[1][1]
    assert grayify.script == "#!/bin/sh\nconvert\n"  # read relative to the FDL, not the cwd
    assert grayify.environment.variables == {"QUALITY": "80"}
    assert grayify.cpu_cores == 0.5 and grayify.memory_bytes == 2**30
    assert grayify.output[1].storage_provider == "s3.aws"
    # Top-level providers are shared by every service of the file.
    assert grayify.storage_providers.s3["aws"].secret_key == "very-secret"
    assert thumbnail.storage_providers.s3["aws"].region == "eu-west-1"
    assert thumbnail.environment.variables == {"SIZE": "64"}
    assert thumbnail.input[0].path == "grayify/output"


def test_inline_multi_line_script_is_taken_as_is(tmp_path: Path) -> None:
    text = (
        "functions:\n  oscar:\n  - c:\n      name: inline\n      image: busybox\n"
        "      script: |\n        echo one\n        echo two\n"
    )
    ((_, service),) = parse_fdl(write(tmp_path, text))
    assert service.script == "echo one\necho two\n"


def fdl_error(tmp_path: Path, text: str, scripts: dict[str, str] | None = None) -> str:
    fdl = write(tmp_path, text, scripts)
    with pytest.raises(ServiceDefinitionError) as caught:
        parse_fdl(fdl)
    message = str(caught.value)
    assert message.startswith(f"{fdl}: "), message
    return message.removeprefix(f"{fdl}: ")


def test_missing_script_file_names_file_and_field(tmp_path: Path) -> None:
    message = fdl_error(tmp_path, FDL, {"scripts/grayify.sh": "x"})
    assert message.startswith("functions.oscar[1].other-cluster.script: cannot read ")
    assert "thumb.sh" in message and "No such file" in message


def test_invalid_field_names_its_location(tmp_path: Path) -> None:
    text = "functions:\n  oscar:\n  - c1:\n      name: ok\n      image: i\n      script: s.sh\n"
    text += "      memory: lots\n      input:\n      - path: ''\n"
    message = fdl_error(tmp_path, text, {"s.sh": "x"})
    assert "functions.oscar[0].c1.memory: 'lots' is not a quantity" in message
    assert "functions.oscar[0].c1.input[0].path: the path is empty" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("functions: [", "not valid YAML"),
        ("- a\n", "expected a mapping with a 'functions' key"),
        ("functions:\n  aws: []\n", "functions.oscar: expected a list"),
        ("functions:\n  oscar:\n  - a: 1\n    b: 2\n", "functions.oscar[0]: expected one"),
        ("functions:\n  oscar:\n  - c: [1]\n", "functions.oscar[0].c: expected the service's"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in fdl_error(tmp_path, text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ServiceDefinitionError, match=r"absent\.yaml: cannot read"):
        parse_fdl(tmp_path / "absent.yaml")


def test_tabs_after_a_value_and_empty_values_are_read_as_oscars_tools_read_them(
    tmp_path: Path,
) -> None:
    fdl = tmp_path / "fdl.yaml"
    fdl.write_text(
        "functions:\n  oscar:\n  - c:\n      name: tabbed\n      image: busybox\n"
        "      script: |\n        echo kept\t\n      log_level: CRITICAL\t\t\n"
        "      environment:\n        variables:\n          EMPTY:\n"
    )
    ((_, service),) = parse_fdl(fdl)
    assert service.log_level == "CRITICAL"
    assert service.environment.variables == {"EMPTY": ""}
    assert service.script == "echo kept\n"  # trailing blanks go, a shell never minds
    assert service.warnings == []


def test_the_files_own_keys_are_warned_of_in_each_service(tmp_path: Path) -> None:
    fdl = tmp_path / "fdl.yaml"
    fdl.write_text(
        "functions:\n  oscar:\n  - c:\n      name: one\n      image: busybox\n      script: |\n"
        "        echo\n        echo\n"
        "clusters:\n  far:\n    endpoint: https://far.example.org\nhub: x\n"
    )
    ((_, service),) = parse_fdl(fdl)
    assert [line.split(":")[0] for line in service.warnings] == ["clusters", "hub"]
