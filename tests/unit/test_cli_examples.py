"""The service definitions in examples/ are valid, and their scripts do what their READMEs say.

The scripts run here with the host's /bin/sh and the job contract's variables; the
integration tests run them in containers too (tests/integration/test_cli_jobs.py).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from oscarpy.services.model import parse_fdl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    "fdl", sorted(EXAMPLES.glob("*/*.yaml")), ids=lambda path: path.parent.name
)
def test_every_example_fdl_is_valid(fdl: Path) -> None:
    services = parse_fdl(fdl)

    assert services
    for _, service in services:
        assert service.script.startswith("#!/bin/sh")


def test_every_example_has_a_readme_line() -> None:
    for folder in sorted(path for path in EXAMPLES.iterdir() if path.is_dir()):
        readmes = list(folder.glob("README*"))
        if folder.name == "word-count" and not readmes:
            continue  # documented in the top-level README
        assert readmes and readmes[0].read_text().strip(), folder


def _run_script(script: Path, input_file: Path, tmp_path: Path) -> tuple[str, Path]:
    output = tmp_path / "output"
    output.mkdir(parents=True)
    environment = {
        "PATH": os.environ["PATH"],
        "INPUT_FILE_PATH": str(input_file),
        "TMP_INPUT_DIR": str(input_file.parent),
        "TMP_OUTPUT_DIR": str(output),
    }
    result = subprocess.run(
        ["/bin/sh", str(script)], env=environment, capture_output=True, text=True, check=True
    )
    return result.stdout, output


def test_cowsay_says_the_request_body(tmp_path: Path) -> None:
    body = tmp_path / "body"
    body.write_text("Hello from oscar-py\n")

    said, _ = _run_script(EXAMPLES / "cowsay" / "script.sh", body, tmp_path)

    assert said.splitlines()[:3] == [
        " " + "-" * 21,
        "< Hello from oscar-py >",
        " " + "-" * 21,
    ]
    assert "(oo)" in said


def test_cowsay_says_the_message_of_an_oscar_json_body(tmp_path: Path) -> None:
    body = tmp_path / "body"
    body.write_text('{"message": "Hi OSCAR"}')

    said, _ = _run_script(EXAMPLES / "cowsay" / "script.sh", body, tmp_path)

    assert said.splitlines()[1] == "< Hi OSCAR >"


def test_chain_stages_shout_then_measure(tmp_path: Path) -> None:
    _, shouted = _run_script(
        EXAMPLES / "chain" / "shout.sh", EXAMPLES / "chain" / "poem.txt", tmp_path / "one"
    )
    _, measured = _run_script(
        EXAMPLES / "chain" / "measure.sh", shouted / "poem.txt", tmp_path / "two"
    )

    assert (shouted / "poem.txt").read_text().startswith("FILES GO IN, RESULTS COME OUT,")
    assert (measured / "poem.txt.count").read_text() == "lines 2\nwords 12\nbytes 65\n"
