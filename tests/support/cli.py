"""Run the installed `oscar` command as a user would, with a private HOME."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.server import OSCAR, RunningServer


def cli_environment(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment minus OSCAR_* settings, with HOME pointing at `home`.

    OSCAR_DATA_DIR points into `home` too, so that a developer's own `oscar serve` is never
    picked up as the local fallback cluster.
    """
    environment = {key: value for key, value in os.environ.items() if not key.startswith("OSCAR_")}
    environment.update(
        {
            "HOME": str(home),
            "OSCAR_DATA_DIR": str(home / "no-local-server"),
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
    )
    environment.update(extra)
    return environment


def run_cli(
    home: Path,
    *args: str,
    input: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OSCAR, *args],
        input=input,
        capture_output=True,
        text=True,
        env=cli_environment(home, **(env or {})),
        cwd=cwd or home,
        timeout=timeout,
        check=False,
    )


TEST_IMAGE = "oscar-test/busybox:latest"


def write_fdl(directory: Path, services: list[dict[str, object]], scripts: dict[str, str]) -> Path:
    """An FDL file for the default cluster with its scripts beside it; returns its path."""
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    for name, text in scripts.items():
        (directory / name).write_text(text)
    path = directory / "services.yaml"
    document = {"functions": {"oscar": [{"oscar-cluster": service} for service in services]}}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def copy_example(example: Path, destination: Path) -> Path:
    """A copy of an `examples/` folder whose FDL uses the locally built test image."""
    import re
    import shutil

    shutil.copytree(example, destination)
    for fdl in destination.glob("*.yaml"):
        fdl.write_text(re.sub(r"image: \S+", f"image: {TEST_IMAGE}", fdl.read_text()))
    return destination


def add_cluster(home: Path, server: RunningServer, cluster_id: str = "test") -> None:
    """Make `server` the default cluster of the user whose HOME is `home`, as a user would."""
    added = run_cli(
        home,
        "cluster",
        "add",
        cluster_id,
        server.url,
        server.username,
        "--password-stdin",
        input=server.password,
    )
    assert added.returncode == 0, added.stderr
