"""Who may use a job's work directory.

The data directory is private to the server's user (0700, files 0600), so that no other local
user reads anything in it. A script, though, runs as its container's user and must read its
inputs and write `output/` and `tmp/`: `open_to_script` is the one place that grants it. The
container sees its work directory through a bind mount, without passing the private parents.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

WRITABLE = ("output", "tmp")


def open_to_script(work_dir: Path) -> None:
    """Let the script's user read everything in `work_dir` and write `output/` and `tmp/`.

    The script runs as its image's user, unknown here, so the tree is opened to every user
    (sticky, world-writable `output/` and `tmp/`); only the container can reach it. Where the
    user's uid is known, hand the tree to it with `os.chown` instead. Links are skipped: a mode
    change would follow them out of the directory.
    """
    for directory, subdirectories, files in os.walk(work_dir):
        path = Path(directory)
        os.chmod(path, 0o1777 if path.parent == work_dir and path.name in WRITABLE else 0o755)
        for name in files:
            entry = path / name
            if stat.S_ISREG(entry.lstat().st_mode):
                os.chmod(entry, 0o644)
        subdirectories[:] = [name for name in subdirectories if not (path / name).is_symlink()]
