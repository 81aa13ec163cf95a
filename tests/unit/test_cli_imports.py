"""`oscar --help` must start fast: no boto3, docker or httpx before a command needs them."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
sys.argv = ["oscar", "--help"]
from oscarpy.cli.main import main
try:
    main()
except SystemExit:
    pass
loaded = {name.split(".")[0] for name in sys.modules}
heavy = sorted(loaded & {"boto3", "botocore", "docker", "httpx"})
print("HEAVY=" + ",".join(heavy))
"""


def test_help_does_not_import_boto3_docker_or_httpx() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=60
    )

    assert "Usage: oscar" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "HEAVY="
