"""Build the supervisor image without a registry: `python -m oscarpy.engine.runtimes.swarm_image`.

Writes a root filesystem as a tar stream (this Python interpreter, the shared libraries it
and its standard-library extensions load, the standard library, and the agent) for
`docker import`; that is how tests and air-gapped sites get `oscar-py/supervisor`. Sites with
a registry build `deploy/supervisor/Dockerfile` instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

AGENT_PATH = "/oscar/agent.py"
_SKIPPED = {"test", "site-packages", "idlelib", "tkinter", "turtledemo", "ensurepip",
            "lib2to3", "pydoc_data", "config-3.11-x86_64-linux-gnu"}  # fmt: skip


def _libraries(binaries: Iterable[Path]) -> set[Path]:
    """The shared libraries `ldd` lists for the binaries, with the dynamic loader."""
    found: set[Path] = set()
    for binary in binaries:
        listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        for match in re.finditer(r"(/\S+\.so[.\d]*)", listing):
            found.add(Path(match.group(1)))
    return found


def _skipped(name: str) -> bool:
    """Parts no agent imports; of compiled modules, only the plain `.pyc` (a fast start)."""
    base = Path(name).name
    return base in _SKIPPED or "tkinter" in base or ".opt-" in base


def interpreter() -> Path:
    return Path(os.path.realpath(sys.executable))


def entrypoint() -> list[str]:
    """What `docker import --change` sets as the image's ENTRYPOINT."""
    return [str(interpreter()), AGENT_PATH]


def write_rootfs(output: BinaryIO) -> None:
    python = interpreter()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    extensions = [so for so in (stdlib / "lib-dynload").glob("*.so") if "tkinter" not in so.name]
    with tarfile.open(fileobj=output, mode="w|") as archive:
        for library in sorted(_libraries([python, *extensions])):
            real = Path(os.path.realpath(library))
            archive.add(real, arcname=str(library))
        archive.add(python, arcname=str(python))
        archive.add(
            stdlib,
            arcname=str(stdlib),
            filter=lambda info: None if _skipped(info.name) else info,
        )
        archive.add(Path(__file__).with_name("swarm_agent.py"), arcname=AGENT_PATH)
        tmp = tarfile.TarInfo("tmp")
        tmp.type, tmp.mode = tarfile.DIRTYPE, 0o1777
        archive.addfile(tmp)


if __name__ == "__main__":
    write_rootfs(sys.stdout.buffer)
