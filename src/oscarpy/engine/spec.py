"""Everything the supervisor needs to run one job attempt, as plain data.

The engine builds a `JobSpec` from the ledger and the service registry; the supervisor needs
nothing else, so that it can run on another host than the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from oscarpy.engine.runtimes.base import ImagePull, Limits


@dataclass(frozen=True)
class StorageTarget:
    """An output path: where files of `output/` go, if their names pass the filters."""

    provider: str
    bucket: str
    folder: str = ""
    prefix: tuple[str, ...] = ()
    suffix: tuple[str, ...] = ()

    def matches(self, relative_path: str) -> bool:
        """OSCAR's filters, as `StoragePath.matches`: one prefix and one suffix must match the
        path relative to the folder (an empty list lets everything through)."""
        name = relative_path.lstrip("/")
        if self.prefix and not any(name.startswith(prefix) for prefix in self.prefix):
            return False
        return not self.suffix or any(name.endswith(suffix) for suffix in self.suffix)

    def key_for(self, relative_path: str) -> str:
        return f"{self.folder}/{relative_path}" if self.folder else relative_path


@dataclass(frozen=True)
class StoredInput:
    """The object a storage job processes."""

    provider: str
    bucket: str
    key: str


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    attempt: int
    service: str
    image: str
    script: str
    event: str
    """The raw event JSON (storage jobs) or a description of the request (invocations)."""
    input: StoredInput | None = None
    body_path: Path | None = None
    """A `/job` request body, already decoded, for invocations."""
    event_time: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    """The service's variables and secrets."""
    token: str = ""
    limits: Limits = field(default_factory=Limits)
    timeout: float | None = None
    outputs: tuple[StorageTarget, ...] = ()
    user: str | None = None
    """Who the script runs as (`uid:gid`); `None`: the image's user."""
    network: str = "default"
    stage_in: bool = True
    """False (OSCAR's `file_stage_in: true`): the input is not downloaded; the script gets the
    event only."""
    base_path: str = ""
    """OSCAR_SERVICE_BASE_PATH: where the service is exposed, or ""."""
    constraints: tuple[str, ...] = ()
    """Which nodes may run it, in cluster mode (Swarm placement constraints)."""
    mount: StorageTarget | None = None
    """OSCAR's `mount`: this storage folder is copied to `mnt/<bucket>/<folder>` of the work
    directory before the script starts, and shown read-only at `/mnt`."""
    pull: ImagePull | None = None
    """How the image is got (pull policy, registry login); `None`: by its tag."""
