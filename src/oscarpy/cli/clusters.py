"""The client's cluster list: `~/.oscar/config.yaml`, in oscar-cli's format.

The file maps cluster ids to endpoints and credentials (`oscar: {ID: {endpoint, auth_user,
auth_password, ssl_verify, memory, log_level}}`, `default: ID`), exactly as oscar-cli writes
`~/.oscar-cli/config.yaml`, so either tool can read the other's file. Ours is read first; an
oscar-cli file is read when ours does not exist, and saving always writes ours. It holds
passwords, so it is written with mode 0600 from the first byte.

When no cluster is configured at all, a local `oscar serve` is used if its credentials file
(`<data dir>/credentials.json`, holding `endpoint`, `username` and `password`) is readable:
the first `oscar serve` on a machine is then usable without any set-up.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oscarpy.cli.errors import ConfigError

CONFIG_ENVIRONMENT_VARIABLE = "OSCAR_CONFIG"
LOCAL_CLUSTER_ID = "local"
DEFAULT_MEMORY = "256Mi"
DEFAULT_LOG_LEVEL = "INFO"


@dataclass
class Cluster:
    """How to reach one OSCAR cluster (field names are oscar-cli's)."""

    endpoint: str
    auth_user: str
    auth_password: str
    ssl_verify: bool = True
    memory: str = DEFAULT_MEMORY
    log_level: str = DEFAULT_LOG_LEVEL
    oidc_token: str = ""
    """An OIDC access token, sent as a Bearer token when there is no user."""
    oidc_refresh_token: str = ""
    """oscar-cli's: a refresh token, exchanged at the token endpoint for each command's token."""
    oidc_token_endpoint: str = ""
    """Where to refresh (ours); default: the refresh token's issuer's, when it is a JWT."""
    oidc_client_id: str = ""
    """The OIDC client the refresh token was issued to (ours); default: its `azp`."""
    oidc_account_name: str = ""
    """oscar-cli's: the oidc-agent account whose access token is used (`oidc-token NAME`)."""

    @property
    def uses_oidc(self) -> bool:
        return not self.auth_user and bool(
            self.oidc_token or self.oidc_refresh_token or self.oidc_account_name
        )

    @classmethod
    def from_mapping(cls, cluster_id: str, data: object, source: Path) -> Cluster:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: cluster {cluster_id!r} is not a mapping")
        if not data.get("endpoint"):
            raise ConfigError(f"{source}: cluster {cluster_id!r} has no endpoint")
        if not any(data.get(key) for key in ("auth_user", *_OIDC_CREDENTIALS)):
            raise ConfigError(
                f"{source}: cluster {cluster_id!r} has no auth_user "
                f"(nor {', '.join(_OIDC_CREDENTIALS)})"
            )
        return cls(
            endpoint=str(data["endpoint"]).rstrip("/"),
            auth_user=str(data.get("auth_user") or ""),
            auth_password=str(data.get("auth_password") or ""),
            ssl_verify=bool(data.get("ssl_verify", True)),
            memory=str(data.get("memory") or DEFAULT_MEMORY),
            log_level=str(data.get("log_level") or DEFAULT_LOG_LEVEL),
            **{key: str(data.get(key) or "") for key in _OIDC_FIELDS},
        )

    def as_document(self) -> dict[str, Any]:
        document = asdict(self)
        for key in _OIDC_FIELDS:
            if not document[key]:
                del document[key]
        return document


_OIDC_CREDENTIALS = ("oidc_token", "oidc_refresh_token", "oidc_account_name")
_OIDC_FIELDS = (*_OIDC_CREDENTIALS, "oidc_token_endpoint", "oidc_client_id")


@dataclass
class ClusterConfig:
    """The parsed config file; `path` is where `save()` writes."""

    path: Path
    clusters: dict[str, Cluster] = field(default_factory=dict)
    default: str | None = None
    read_from: Path | None = None
    """The file actually read (oscar-cli's when ours did not exist), None if none existed."""

    def add(self, cluster_id: str, cluster: Cluster) -> None:
        """Add or replace a cluster; the first one becomes the default, as in oscar-cli."""
        self.clusters[cluster_id] = cluster
        if len(self.clusters) == 1 or self.default not in self.clusters:
            self.default = cluster_id

    def remove(self, cluster_id: str) -> None:
        self.require(cluster_id)
        del self.clusters[cluster_id]
        if self.default == cluster_id:
            self.default = None

    def set_default(self, cluster_id: str) -> None:
        self.require(cluster_id)
        self.default = cluster_id

    def require(self, cluster_id: str) -> Cluster:
        try:
            return self.clusters[cluster_id]
        except KeyError:
            known = ", ".join(sorted(self.clusters)) or "none"
            raise ConfigError(
                f"cluster {cluster_id!r} is not configured (known: {known}); "
                "add it with `oscar cluster add ID ENDPOINT USER`"
            ) from None

    def resolve(self, cluster_id: str | None) -> tuple[str, Cluster]:
        """The cluster a command talks to: the one named, else the default, else the only
        one, else a local `oscar serve`."""
        if cluster_id is not None:
            if cluster_id not in self.clusters and cluster_id == LOCAL_CLUSTER_ID:
                local = local_cluster()
                if local is not None:
                    return cluster_id, local
            return cluster_id, self.require(cluster_id)
        if self.default is not None and self.default in self.clusters:
            return self.default, self.clusters[self.default]
        if len(self.clusters) == 1:
            only = next(iter(self.clusters))
            return only, self.clusters[only]
        if self.clusters:
            raise ConfigError(
                "several clusters are configured and none is the default: "
                "pass -c ID or run `oscar cluster default -s ID`"
            )
        local = local_cluster()
        if local is not None:
            return LOCAL_CLUSTER_ID, local
        raise ConfigError(
            f"no cluster configured in {self.path} and no local `oscar serve` found in "
            f"{local_data_dir()}: run `oscar cluster add ID ENDPOINT USER` "
            "or start `oscar serve`"
        )

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "oscar": {
                cluster_id: cluster.as_document() for cluster_id, cluster in self.clusters.items()
            }
        }
        if self.default:
            document["default"] = self.default
        return document

    def save(self) -> None:
        """Write atomically, readable by the owner only from the first byte on."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        document = self.to_document()
        if self.path.suffix in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(document, sort_keys=False)
        else:
            text = json.dumps(document, indent=2) + "\n"
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise ConfigError(f"cannot write {self.path}: {error.strerror}") from error


def default_config_path() -> Path:
    configured = os.environ.get(CONFIG_ENVIRONMENT_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".oscar" / "config.yaml"


def oscar_cli_config_path() -> Path:
    return Path.home() / ".oscar-cli" / "config.yaml"


def load_config(path: Path | None = None) -> ClusterConfig:
    """Read the given file, else ours, else oscar-cli's; a missing file is an empty config."""
    if path is not None:
        target = path.expanduser()
        candidates = [target]
    else:
        target = default_config_path()
        candidates = [target]
        if CONFIG_ENVIRONMENT_VARIABLE not in os.environ:
            candidates.append(oscar_cli_config_path())
    for candidate in candidates:
        if candidate.is_file():
            config = _parse(candidate, _read_document(candidate))
            config.path = target
            config.read_from = candidate
            return config
    return ClusterConfig(path=target)


def _read_document(path: Path) -> object:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from error
    if path.suffix not in (".yaml", ".yml"):
        try:
            return json.loads(text)
        except ValueError as error:
            raise ConfigError(f"{path} is not valid JSON: {error}") from error
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {_yaml_problem(error)}") from error


def _parse(path: Path, document: object) -> ClusterConfig:
    if document is None:
        return ClusterConfig(path=path)
    if not isinstance(document, dict):
        raise ConfigError(f"{path} must hold a mapping with an 'oscar' key")
    entries = document.get("oscar") or {}
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: 'oscar' must map cluster ids to clusters")
    clusters = {
        str(cluster_id): Cluster.from_mapping(str(cluster_id), data, path)
        for cluster_id, data in entries.items()
    }
    default = document.get("default") or None
    return ClusterConfig(path=path, clusters=clusters, default=str(default) if default else None)


def _yaml_problem(error: Exception) -> str:
    """PyYAML's multi-line message as one line: what is wrong, and where."""
    problem = getattr(error, "problem", None)
    mark = getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(error).split()) or type(error).__name__


def local_data_dir() -> Path:
    """Where a local `oscar serve` keeps its data: OSCAR_DATA_DIR, else the default."""
    configured = os.environ.get("OSCAR_DATA_DIR")
    if configured:
        return Path(configured).expanduser().absolute()
    from oscarpy.config import default_data_dir

    return default_data_dir()


def local_cluster() -> Cluster | None:
    """The local `oscar serve`, if its credentials file is readable and names its endpoint."""
    path = local_data_dir() / "credentials.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    endpoint, username, password = data.get("endpoint"), data.get("username"), data.get("password")
    if not (endpoint and username and password):
        return None
    return Cluster(
        endpoint=str(endpoint).rstrip("/"), auth_user=str(username), auth_password=str(password)
    )
