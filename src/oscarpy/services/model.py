"""The OSCAR service definition: the JSON of the REST API and the services of an FDL file.

Compatibility rules, because OSCAR's clients are written in Go and Python and differ:

- keys are matched case-insensitively (`Variables` and `variables` are the same key);
- `null`, and `""` for settings with a default, mean "use the default" (Go sends zero values);
- keys OSCAR defines that we do not implement are accepted, kept and returned, and when they ask
  for something (a value other than Go's zero) they are listed in `Service.warnings`;
- keys only OSCAR's answers carry (`namespace`, `volume_status`, `deployment`, the `hidden`
  `minio.default` entry) are dropped, so a service exported from OSCAR posts unchanged;
- any other key is dropped as OSCAR drops it, and listed in the warnings so a typo is seen;
- a path on a provider type oscar-py cannot reach (Onedata, Rucio) is refused.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from oscarpy.services import quantities
from oscarpy.services.errors import ServiceDefinitionError
from oscarpy.services.expose import ExposeSettings

__all__ = [
    "ANY_SCRIPT_PATH",
    "DEFAULT_PROVIDER",
    "Environment",
    "MinioProviderConfig",
    "S3ProviderConfig",
    "Service",
    "ServiceDefinitionError",
    "StoragePath",
    "StorageProviders",
    "Synchronous",
    "WebdavProviderConfig",
    "is_service_name",
    "parse_fdl",
    "parse_fdl_text",
    "parse_service",
]

#: The provider of a path that names none: the embedded store, unless the service defines its own
#: `storage_providers.minio.default`.
DEFAULT_PROVIDER = "minio.default"

#: Shown instead of a provider's secret key in responses; sending it back keeps the stored key.
HIDDEN = "hidden"

PROVIDER_TYPES = ("minio", "s3", "webdav", "onedata", "rucio")
#: Provider types staging can reach; a path on any other type is refused when it is defined.
SUPPORTED_PROVIDER_TYPES = ("minio", "s3", "webdav")
_SUPPORTED_TEXT = "minio, s3 or webdav"
_PROVIDER_NAMES = {"onedata": "Onedata", "rucio": "Rucio"}
LOG_LEVELS = ("NOTSET", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Used with fullmatch: `$` would also accept a trailing newline.
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")


def is_service_name(name: str) -> bool:
    """Whether `name` can name a service (a DNS label of at most 39 characters)."""
    return len(name) <= 39 and _DNS_LABEL.fullmatch(name) is not None


def _is_zero(value: Any) -> bool:
    """Whether a value is what a Go client sends for a field it does not use."""
    if value is None or value is False or value == 0 or value == "":
        return True
    if isinstance(value, list):
        return all(_is_zero(item) for item in value)
    if isinstance(value, dict):
        return all(_is_zero(item) for item in value.values())
    return False


def _as_text(value: Any) -> Any:
    """YAML turns `true` and `8080` into bool and int; OSCAR's maps hold strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _text_map(value: Any) -> Any:
    if value is None:
        return {}
    if isinstance(value, dict):
        # `KEY:` with no value is YAML's null, which Go reads into a string as "".
        return {key: "" if item is None else _as_text(item) for key, item in value.items()}
    return value


def _document_keys(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """JSON schema: list the OSCAR-only keys, and refuse others as validation does."""
    properties = schema.setdefault("properties", {})
    for key in sorted(getattr(model, "oscar_only_keys", ())):
        properties[key] = {"description": "Defined by OSCAR; accepted and kept, no effect here."}
    schema["additionalProperties"] = False


class _OscarModel(BaseModel):
    """Base of every definition model: case-insensitive keys, OSCAR-only keys kept."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_document_keys)

    #: Keys OSCAR defines at this level that oscar-py accepts and keeps without acting on them,
    #: each with what a user loses ("" when nothing: the setting only matters to OSCAR).
    oscar_only_keys: ClassVar[dict[str, str]] = {}
    #: Keys only OSCAR's answers carry: dropped without a word.
    answer_only_keys: ClassVar[frozenset[str]] = frozenset()
    #: Keys for which `""` means the default (Go clients send empty strings for unset fields).
    empty_means_default: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _normalise_keys(cls, data: Any) -> Any:
        if data is None:
            return {}
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields) | set(cls.oscar_only_keys)
        normalised: dict[str, Any] = {}
        unknown: list[str] = []
        for key, value in data.items():
            lowered = str(key).lower()
            if lowered not in known:
                unknown.append(str(key))
                continue
            if value is None or (value == "" and lowered in cls.empty_means_default):
                continue
            if lowered in normalised and normalised[lowered] != value:
                raise ValueError(
                    f"key {lowered!r} is given twice with different values "
                    "(keys are case-insensitive)"
                )
            normalised[lowered] = value
        if unknown:
            # `sift` drops unknown keys before validation; reaching here is a caller's bug.
            expected = ", ".join(sorted(cls.model_fields))
            raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}; expected {expected}")
        return normalised

    @property
    def oscar_settings(self) -> dict[str, Any]:
        """The OSCAR-defined settings that were given but have no effect here."""
        return dict(self.model_extra or {})

    @classmethod
    def sift_more(cls, data: dict[Any, Any], where: str, warnings: list[str]) -> dict[Any, Any]:
        """What `sift` does at this level beyond sorting keys out; nothing by default."""
        return data


def _is_neutral(key: str, value: Any) -> bool:
    """Whether an OSCAR-only setting asks for nothing (what OSCAR's answers hold by default)."""
    if isinstance(value, dict):
        value = _lower_keys(value)
        if key == "expose":  # OSCAR exposes nothing without a port
            return _is_zero(value.get("api_port"))
        if key == "federation":
            topology = str(value.get("topology") or "none").lower()
            return topology == "none" and _is_zero(value.get("members"))
    if key == "isolation_level":
        return str(value or "").upper() in ("", "SERVICE")
    return _is_zero(value)


def _nested_model(annotation: Any) -> tuple[str, type[_OscarModel]] | None:
    """The definition model a field holds: directly ("one"), as a list ("list") or a map ("map")."""
    if isinstance(annotation, type) and issubclass(annotation, _OscarModel):
        return "one", annotation
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [found for argument in arguments if (found := _nested_model(argument))]
        return inner[0] if inner else None
    item = arguments[-1] if arguments else None
    if isinstance(item, type) and issubclass(item, _OscarModel):
        if origin is list:
            return "list", item
        if origin is dict:
            return "map", item
    return None


def _place(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def sift(data: Any, model: type[_OscarModel], where: str, warnings: list[str]) -> Any:
    """`data` without the keys `model` drops, appending a warning for each key that is unknown
    or asks for something oscar-py does not do. Malformed values are left for validation."""
    if not isinstance(data, dict):
        return data
    known = set(model.model_fields) | set(model.oscar_only_keys)
    kept: dict[Any, Any] = {}
    for key, value in data.items():
        lowered, place = str(key).lower(), _place(where, key)
        if lowered in model.answer_only_keys:
            continue
        if lowered not in known:
            warnings.append(f"{place}: unknown key, ignored")
            continue
        loss = model.oscar_only_keys.get(lowered)
        if loss and not _is_neutral(lowered, value):
            warnings.append(f"{place}: not supported by oscar-py, ignored: {loss}")
        field = model.model_fields.get(lowered)
        nested = _nested_model(field.annotation) if field is not None else None
        if nested is not None:
            value = _sift_nested(value, nested, place, warnings)
        kept[key] = value
    return model.sift_more(kept, where, warnings)


def _sift_nested(
    value: Any, nested: tuple[str, type[_OscarModel]], place: str, warnings: list[str]
) -> Any:
    shape, child = nested
    if shape == "one":
        return sift(value, child, place, warnings)
    if shape == "list" and isinstance(value, list):
        return [
            sift(item, child, f"{place}[{index}]", warnings) for index, item in enumerate(value)
        ]
    if shape == "map" and isinstance(value, dict):
        return {
            name: sift(item, child, _place(place, name), warnings) for name, item in value.items()
        }
    return value


class StoragePath(_OscarModel):
    """One input or output of a service: a folder of a bucket on a storage provider."""

    oscar_only_keys = {"options": "rclone mount options apply to OSCAR's `mount` only"}
    empty_means_default = frozenset({"storage_provider"})

    storage_provider: str = Field(
        DEFAULT_PROVIDER,
        description="`<type>.<id>` of a provider: `minio.default` is the embedded store.",
    )
    path: str = Field(
        description="`bucket/folder`, or `bucket/` for the bucket's root; a path without `/` "
        "is the folder `<path>` of the bucket named after the service."
    )
    prefix: list[str] = Field(default_factory=list, description="Keep files starting so.")
    suffix: list[str] = Field(default_factory=list, description="Keep files ending so.")

    @field_validator("storage_provider", mode="after")
    @classmethod
    def _normalise_provider(cls, value: str) -> str:
        kind, separator, identifier = value.strip().partition(".")
        kind = kind.lower()
        if kind not in PROVIDER_TYPES:
            raise ValueError(
                f"storage provider {value!r} is not <type>.<id> with type one of "
                f"{', '.join(PROVIDER_TYPES)}"
            )
        if separator and not identifier:
            raise ValueError(f"storage provider {value!r} has an empty id")
        return f"{kind}.{identifier or 'default'}"

    @field_validator("path", mode="after")
    @classmethod
    def _normalise_path(cls, value: str) -> str:
        segments = [segment.strip() for segment in value.strip().split("/")]
        segments = [segment for segment in segments if segment]
        if not segments:
            raise ValueError("the path is empty; give bucket/folder")
        if any(segment in (".", "..") for segment in segments):
            raise ValueError(f"path {value!r} must not contain '.' or '..' segments")
        if len(segments) == 1 and "/" in value:
            return f"{segments[0]}/"  # `bucket/` is the bucket's root; `name` alone is not
        return "/".join(segments)

    @field_validator("prefix", "suffix", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        return value

    @property
    def bucket(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def folder(self) -> str:
        """The folder inside the bucket, without leading or trailing slash; "" for the root."""
        _, _, folder = self.path.partition("/")
        return folder

    @property
    def provider_type(self) -> str:
        return self.storage_provider.split(".", 1)[0]

    @property
    def provider_id(self) -> str:
        return self.storage_provider.split(".", 1)[1]

    def key_prefix(self) -> str:
        """The key prefix of the objects under this path: `folder/`, or "" for the root."""
        return f"{self.folder}/" if self.folder else ""

    def contains(self, other: StoragePath) -> bool:
        """Whether `other` is this path or a folder below it, on the same provider."""
        if other.storage_provider != self.storage_provider or other.bucket != self.bucket:
            return False
        return not self.folder or f"{other.folder}/".startswith(self.key_prefix())

    def matches(self, relative_path: str) -> bool:
        """Whether a file (relative to this path's folder) passes the prefix and suffix filters.

        An empty list lets everything through; otherwise one entry must match, as in OSCAR.
        """
        name = relative_path.lstrip("/")
        if self.prefix and not any(name.startswith(prefix) for prefix in self.prefix):
            return False
        return not self.suffix or any(name.endswith(suffix) for suffix in self.suffix)


class Environment(_OscarModel):
    variables: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)

    @field_validator("variables", "secrets", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        return _text_map(value)

    @field_validator("variables", "secrets", mode="after")
    @classmethod
    def _valid_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name or "=" in name or "\0" in name:
                raise ValueError(f"{name!r} is not a valid environment variable name")
        return value


class Synchronous(_OscarModel):
    min_scale: int = Field(0, ge=0)
    max_scale: int = Field(0, ge=0, description="0 means no limit.")


class MinioProviderConfig(_OscarModel):
    """An S3-compatible endpoint (MinIO, Ceph, Garage...) named `minio.<id>`."""

    empty_means_default = frozenset({"region"})

    endpoint: str = ""
    verify: bool = True
    access_key: str = ""
    secret_key: str = ""
    region: str = "us-east-1"


class S3ProviderConfig(_OscarModel):
    """AWS S3, named `s3.<id>`."""

    empty_means_default = frozenset({"region"})

    access_key: str = ""
    secret_key: str = ""
    region: str = "us-east-1"


class WebdavProviderConfig(_OscarModel):
    """A WebDAV server (e.g. dCache), named `webdav.<id>`."""

    hostname: str = ""
    login: str = ""
    password: str = ""


class StorageProviders(_OscarModel):
    """The external storages a service's paths may name, with their credentials."""

    # Older OSCAR releases named dCache's provider so; it is kept and has no effect.
    oscar_only_keys = {"dcache": "dCache is reached through `webdav`; this older key is unused"}

    minio: dict[str, MinioProviderConfig] = Field(default_factory=dict)
    s3: dict[str, S3ProviderConfig] = Field(default_factory=dict)
    webdav: dict[str, WebdavProviderConfig] = Field(default_factory=dict)
    onedata: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Defined by OSCAR; kept, but no path may use it."
    )
    rucio: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Defined by OSCAR; kept, but no path may use it."
    )

    @classmethod
    def sift_more(cls, data: dict[Any, Any], where: str, warnings: list[str]) -> dict[Any, Any]:
        """Drop the `minio.default` entry OSCAR adds to every answer (its own MinIO, keys
        `hidden`): here `minio.default` is the embedded store, as it is OSCAR's own there."""
        data = dict(data)
        for key, entries in data.items():
            kind = str(key).lower()
            if kind == "minio" and isinstance(entries, dict):
                data[key] = {
                    name: entry
                    for name, entry in entries.items()
                    if not (name == "default" and _is_oscar_default(entry))
                }
            elif kind in _PROVIDER_NAMES and not _is_zero(entries):
                warnings.append(
                    f"{_place(where, key)}: {_PROVIDER_NAMES[kind]} storage is not supported by "
                    "oscar-py; its credentials are kept but no input or output can use them"
                )
        return data

    def free_form(self) -> list[tuple[list[dict[str, Any]], str]]:
        """The entries of providers kept as plain maps, each kind with its secret's key."""
        return [
            (list(getattr(self, kind).values()), key) for kind, key in _FREE_FORM_SECRETS.items()
        ]

    def defines(self, provider: str) -> bool:
        kind, _, identifier = provider.partition(".")
        entries: dict[str, Any] = getattr(self, kind, {})
        return identifier in entries


#: Provider kinds kept as plain maps, and the key of the secret each holds.
_FREE_FORM_SECRETS = {"onedata": "token", "rucio": "refresh_token"}


def _is_oscar_default(entry: Any) -> bool:
    """Whether a `minio.default` entry is the placeholder OSCAR's answers carry."""
    if not isinstance(entry, dict):
        return False
    keys = _lower_keys(entry)
    return keys.get("access_key") == HIDDEN and keys.get("secret_key") == HIDDEN


_DELEGATION = "jobs run on this server; they are never delegated to other clusters"


class Service(_OscarModel):
    """An OSCAR service: an image, a script run on each event, and where files come and go."""

    oscar_only_keys = {
        # Settings that matter only to OSCAR's machinery; oscar-py needs nothing of them.
        "cluster_id": "",
        "alpine": "",
        "propagate_token": "",
        # Settings a user would miss.
        "total_memory": "no limit over all of a service's jobs; `max_concurrency` caps them",
        "total_cpu": "no limit over all of a service's jobs; `max_concurrency` caps them",
        "ephemeral_storage_request": "jobs' disk use is not reserved",
        "enable_sgx": "no SGX device is given to jobs",
        "expose": "",  # acted on: see `expose_settings`
        "expose_options": "exposed services are not implemented",
        "mount": "",  # acted on: see `mount_path`
        "volume": "no persistent volume is attached: managed volumes are not implemented",
        "kserve": "KServe inference services need Kubernetes; none is deployed",
        "interlink_node_name": "interLink nodes are not used; jobs run on this server",
        "federation": _DELEGATION,
        "replicas": _DELEGATION,
        "clusters": _DELEGATION,
        "delegation": _DELEGATION,
        "rescheduler_threshold": _DELEGATION,
        "vo": "virtual organisations are not checked; visibility and allowed_users decide access",
        "isolation_level": "",  # USER: oscarpy.services.isolation
        "bucket_list": "",  # OSCAR's list of the private buckets it made
        "kube_annotations": "there are no Kubernetes objects to annotate",
    }
    # What OSCAR's answers add about its own deployment of the service.
    answer_only_keys = frozenset({"namespace", "volume_status", "deployment"})
    empty_means_default = frozenset(
        {"cpu", "memory", "log_level", "visibility", "image_pull_policy"}
    )

    name: str = Field(min_length=1, max_length=39, description="A DNS label, e.g. `grayify`.")
    image: str = Field(min_length=1, description="Container image with `/bin/sh`.")
    script: str = Field(min_length=1, description="Shell script run for each event (the text).")
    cpu: str = Field("0.2", description="CPU cores per job (Kubernetes quantity: 0.5, 500m).")
    memory: str = Field("256Mi", description="Memory per job (Kubernetes quantity: 256Mi, 1G).")
    log_level: str = Field("INFO", description="Log level of the job supervisor.")
    environment: Environment = Field(default_factory=Environment)
    input: list[StoragePath] = Field(default_factory=list)
    output: list[StoragePath] = Field(default_factory=list)
    storage_providers: StorageProviders = Field(default_factory=StorageProviders)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    visibility: Literal["private", "restricted", "public"] = "private"
    allowed_users: list[str] = Field(default_factory=list)
    synchronous: Synchronous = Field(default_factory=Synchronous)
    token: str = Field("", description="Generated by the server; kept across updates.")
    owner: str = Field("", description="Set by the server.")
    max_concurrency: int | None = Field(
        None, ge=1, description="oscar-py extension: most jobs of this service running at once."
    )
    timeout: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="oscar-py extension: seconds a job may run before it is killed.",
    )
    retries: int = Field(
        0, ge=0, le=100, description="oscar-py extension: re-runs of a script that exits non-zero."
    )
    run_as_root: bool = Field(
        False,
        description="oscar-py extension: run the script as root in its container, for images "
        "that need it; by default it runs as an unprivileged user (uid 65534).",
    )
    warm_jobs: bool = Field(
        False,
        description="oscar-py extension: run the service's file jobs in its warm containers "
        "(the `/run` pool, sized by `synchronous.min_scale`/`max_scale`) instead of a fresh "
        "container each; nothing of one job is visible to the next.",
    )
    network: Literal["default", "none"] = Field(
        "default",
        description="oscar-py extension: `none` runs the service's containers without any "
        "network; `default` on the container engine's default network.",
    )
    mask_secrets: bool = Field(
        True,
        description="oscar-py extension: replace the service's token and secrets with "
        "`********` in `/run` answers, as in job logs; `false` answers them as the script "
        "wrote them.",
    )
    file_stage_in: bool = Field(
        False,
        description="As in OSCAR: `true` skips the download of the input file; the script gets "
        "the event only (EVENT, STORAGE_OBJECT_KEY) and no INPUT_FILE_PATH.",
    )
    enable_gpu: bool = Field(
        False,
        description="As in OSCAR: the service's containers get the host's GPUs (refused where "
        "the host has none, unless the server runs with OSCAR_GPU=optional).",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        None,
        description="oscar-py extension: when the image is pulled before a job. Default as "
        "OSCAR: `Always` for a `latest` or untagged image, else `IfNotPresent`.",
    )
    image_pull_secrets: list[str] = Field(
        default_factory=list,
        description="As in OSCAR, the secrets that log in to the image's registry: here names "
        "of `environment.secrets` entries holding `username:password` (not given to the script).",
    )
    image_prefetch: bool = Field(
        False, description="As in OSCAR: pull the image when the service is created or updated."
    )
    job_ttl: int | None = Field(
        None,
        ge=0,
        description="oscar-py extension: seconds a finished job and its log are kept; 0 keeps "
        "them forever; default the server's OSCAR_JOB_TTL (30 days).",
    )
    placement: list[str] = Field(
        default_factory=list,
        description="oscar-py extension, cluster mode: Swarm placement constraints the nodes "
        "that run the jobs must meet, e.g. `node.labels.zone==b`; `enable_gpu: true` adds "
        "`node.labels.gpu==true`.",
    )

    _warnings: list[str] = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """What `parse_service` dropped or cannot honour, one line each naming the key."""
        return list(self._warnings)

    def unhonoured_settings(self) -> list[str]:
        """The kept settings oscar-py does not act on, as warnings, for a stored service."""
        warnings: list[str] = []
        sift(self.to_json(), Service, "", warnings)
        return warnings

    @field_validator("placement", mode="after")
    @classmethod
    def _valid_constraints(cls, value: list[str]) -> list[str]:
        for constraint in value:
            if not _CONSTRAINT.fullmatch(constraint):
                raise ValueError(
                    f"{constraint!r} is not a placement constraint: write "
                    "`node.labels.<name>==<value>` (or !=; also node.hostname, node.role, "
                    "node.platform.os, node.platform.arch, engine.labels.<name>)"
                )
        return [constraint.strip() for constraint in value]

    def node_constraints(self) -> list[str]:
        """Where its jobs may run in cluster mode: `placement`, and GPU nodes for
        `enable_gpu` (nodes labelled `gpu=true`)."""
        return [*self.placement, *(["node.labels.gpu==true"] if self.enable_gpu else [])]

    @field_validator("name", mode="after")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid service name: use lowercase letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
        return value

    @field_validator("image", "script", mode="after")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("cpu", mode="after")
    @classmethod
    def _valid_cpu(cls, value: str) -> str:
        quantities.cpu_cores(value)
        return value.strip()

    @field_validator("memory", mode="after")
    @classmethod
    def _valid_memory(cls, value: str) -> str:
        quantities.memory_bytes(value)
        return value.strip()

    @field_validator("log_level", mode="after")
    @classmethod
    def _valid_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"log level {value!r} is not one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("visibility", mode="before")
    @classmethod
    def _lower_visibility(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("labels", "annotations", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        return _text_map(value)

    @field_validator("input", "output", "allowed_users", "image_pull_secrets", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @model_validator(mode="after")
    def _check_paths(self) -> Service:
        # A path without a bucket lives in the service's own bucket.
        for paths in (self.input, self.output):
            for index, path in enumerate(paths):
                if "/" not in path.path:
                    paths[index] = path.model_copy(update={"path": f"{self.name}/{path.path}"})
        for field_name, paths in (("input", self.input), ("output", self.output)):
            for index, path in enumerate(paths):
                where = f"{field_name}[{index}]"
                if path.provider_type not in SUPPORTED_PROVIDER_TYPES:
                    raise ValueError(
                        f"{where}.storage_provider: {path.storage_provider!r}: "
                        f"{_PROVIDER_NAMES[path.provider_type]} storage is not supported by "
                        f"oscar-py; use a {_SUPPORTED_TEXT} provider"
                    )
                if path.provider_type != "webdav":  # on WebDAV the first segment is a folder
                    _check_bucket_name(path.bucket, f"{where}.path")
                if path.storage_provider != DEFAULT_PROVIDER and not self.storage_providers.defines(
                    path.storage_provider
                ):
                    raise ValueError(
                        f"{where}.storage_provider: {path.storage_provider!r} is not defined in "
                        "storage_providers"
                    )
        self._check_no_loop()
        mount = self.mount_path()
        if mount is not None:
            if mount.provider_type != "webdav":
                _check_bucket_name(mount.bucket, "mount.path")
            if mount.provider_type not in SUPPORTED_PROVIDER_TYPES or not (
                mount.storage_provider == DEFAULT_PROVIDER
                or self.storage_providers.defines(mount.storage_provider)
            ):
                raise ValueError(
                    f"mount.storage_provider: {mount.storage_provider!r} is not a defined "
                    f"{_SUPPORTED_TEXT} provider"
                )
        if self.expose_settings() is not None and self.network == "none":
            raise ValueError("expose: an exposed service needs a network; drop `network: none`")
        return self

    def _check_no_loop(self) -> None:
        """Refuse outputs inside inputs: every result would trigger the service again, forever."""
        for output_index, output in enumerate(self.output):
            for input_index, input_path in enumerate(self.input):
                if input_path.contains(output):
                    raise ValueError(
                        f"output[{output_index}].path: {output.storage_provider}:{output.path} is "
                        f"inside input[{input_index}] {input_path.storage_provider}:"
                        f"{input_path.path}, so every result would trigger the service again; "
                        "write outputs to a folder outside the input folder"
                    )

    def mount_path(self) -> StoragePath | None:
        """OSCAR's `mount`: a storage path copied read-only to `/mnt/<bucket>/<folder>` before
        each job; `None` when the section asks for nothing."""
        section = _lower_keys(self.oscar_settings).get("mount")
        if not isinstance(section, dict) or _is_neutral("mount", section):
            return None
        keys = _lower_keys(section)
        if not keys.get("path"):
            return None
        path = StoragePath.model_validate(
            {
                "storage_provider": keys.get("storage_provider") or DEFAULT_PROVIDER,
                "path": keys["path"],
            }
        )
        if "/" not in path.path:
            path = path.model_copy(update={"path": f"{path.path}/"})
        return path

    def expose_settings(self) -> ExposeSettings | None:
        """The `expose` section with OSCAR's defaults, or `None` when nothing is exposed."""
        return ExposeSettings.of(_lower_keys(self.oscar_settings).get("expose"))

    def registry_login(self) -> tuple[str, str] | None:
        """(username, password) from the first `image_pull_secrets` entry that holds one."""
        for name in self.image_pull_secrets:
            username, colon, password = self.environment.secrets.get(name, "").partition(":")
            if colon and username:
                return username, password
        return None

    def script_secrets(self) -> dict[str, str]:
        """The secrets the script gets: all but the registry credentials."""
        return {
            name: value
            for name, value in self.environment.secrets.items()
            if name not in self.image_pull_secrets
        }

    def exposed_base_path(self) -> str:
        """OSCAR's `OSCAR_SERVICE_BASE_PATH`: where an exposed service is reached, or ""."""
        return f"/system/services/{self.name}/exposed" if self.expose_settings() else ""

    @property
    def cpu_cores(self) -> float:
        return quantities.cpu_cores(self.cpu)

    @property
    def memory_bytes(self) -> int:
        return quantities.memory_bytes(self.memory)

    def uses_embedded_store(self, path: StoragePath) -> bool:
        """Whether `path` lives in the embedded store (minio.default not overridden)."""
        return path.storage_provider == DEFAULT_PROVIDER and "default" not in (
            self.storage_providers.minio
        )

    def embedded_paths(self) -> list[StoragePath]:
        return [path for path in [*self.input, *self.output] if self.uses_embedded_store(path)]

    def secret_values(self) -> list[str]:
        """Every secret the definition holds, for `oscarpy.log.register_secret`."""
        providers = self.storage_providers
        values = [self.token, *self.environment.secrets.values()]
        values += [entry.secret_key for entry in providers.minio.values()]
        values += [entry.secret_key for entry in providers.s3.values()]
        values += [entry.password for entry in providers.webdav.values()]
        values += [
            str(entry.get(key, "")) for entries, key in providers.free_form() for entry in entries
        ]
        return [value for value in values if value and value != HIDDEN]

    def redacted(self, *, provider_secrets: bool = False) -> Service:
        """A copy safe to return: secret values blanked, provider secrets shown as `hidden`
        unless `provider_secrets` (for the owner, whose storage clients need them, as in OSCAR).

        The token is kept: OSCAR returns it, and clients need it to invoke the service.
        """
        copy = self.model_copy(deep=True)
        copy.environment.secrets = dict.fromkeys(copy.environment.secrets, "")
        if provider_secrets:
            return copy
        providers = copy.storage_providers
        for minio in providers.minio.values():
            minio.secret_key = HIDDEN if minio.secret_key else ""
        for s3 in providers.s3.values():
            s3.secret_key = HIDDEN if s3.secret_key else ""
        for webdav in providers.webdav.values():
            webdav.password = HIDDEN if webdav.password else ""
        for entries, key in providers.free_form():
            for entry in entries:
                if entry.get(key):
                    entry[key] = HIDDEN
        return copy

    def with_secrets_from(self, stored: Service) -> Service:
        """A copy where secrets sent back blank or `hidden` (as GET shows them) keep `stored`'s."""
        copy = self.model_copy(deep=True)
        old_secrets = stored.environment.secrets
        for name, value in copy.environment.secrets.items():
            if value in ("", HIDDEN) and name in old_secrets:
                copy.environment.secrets[name] = old_secrets[name]
        new, old = copy.storage_providers, stored.storage_providers
        for identifier, minio in new.minio.items():
            if minio.secret_key in ("", HIDDEN) and identifier in old.minio:
                minio.secret_key = old.minio[identifier].secret_key
        for identifier, s3 in new.s3.items():
            if s3.secret_key in ("", HIDDEN) and identifier in old.s3:
                s3.secret_key = old.s3[identifier].secret_key
        for identifier, webdav in new.webdav.items():
            if webdav.password in ("", HIDDEN) and identifier in old.webdav:
                webdav.password = old.webdav[identifier].password
        for kind, key in _FREE_FORM_SECRETS.items():
            old_entries: dict[str, dict[str, Any]] = getattr(old, kind)
            for identifier, entry in getattr(new, kind).items():
                if entry.get(key) in (None, "", HIDDEN) and identifier in old_entries:
                    entry[key] = old_entries[identifier].get(key, "")
        return copy

    def hidden_placeholders(self) -> list[str]:
        """Provider secrets still reading `hidden`: a redacted copy sent back with no stored key
        to stand for; storing the placeholder as the key would fail only when a job runs."""
        providers = self.storage_providers
        found = [
            f"storage_providers.{kind}.{identifier}.secret_key"
            for kind, entries in (("minio", providers.minio), ("s3", providers.s3))
            for identifier, entry in entries.items()
            if entry.secret_key == HIDDEN
        ]
        found += [
            f"storage_providers.webdav.{identifier}.password"
            for identifier, entry in providers.webdav.items()
            if entry.password == HIDDEN
        ]
        return found

    def to_json(self) -> dict[str, Any]:
        """The definition as OSCAR's JSON, OSCAR-only settings included."""
        return self.model_dump(mode="json")


def _check_bucket_name(bucket: str, where: str) -> None:
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket or _IP_ADDRESS.fullmatch(bucket):
        raise ValueError(
            f"{where}: {bucket!r} is not a valid bucket name: use 3-63 lowercase letters, "
            "digits, '.' and '-', starting and ending with a letter or digit"
        )


def _describe_location(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    """One line per problem, each starting with the field it concerns."""
    problems: list[str] = []
    for item in error.errors(include_url=False):
        location = _describe_location(tuple(item["loc"]))
        if prefix:
            location = f"{prefix}.{location}" if location else prefix
        message = str(item["msg"]).removeprefix("Value error, ")
        if message == "Field required":
            message = "is required"
        problems.append(f"{location}: {message}" if location else message)
    return "; ".join(problems)


def parse_service(data: Any, *, where: str = "") -> Service:
    """Validate one service definition (a decoded JSON object or an FDL function entry)."""
    if not isinstance(data, dict):
        raise ServiceDefinitionError(
            f"{where or 'the service definition'} must be an object, not {type(data).__name__}"
        )
    warnings: list[str] = []
    data = sift(data, Service, where, warnings)
    try:
        service = Service.model_validate(data)
    except ValidationError as error:
        raise ServiceDefinitionError(describe_validation_error(error, where)) from None
    for index, name in enumerate(service.image_pull_secrets):
        if name not in service.environment.secrets:
            warnings.append(
                f"image_pull_secrets[{index}]: no secret {name!r} in environment.secrets; the "
                "image is pulled without credentials"
            )
    service._warnings = warnings
    return service


_CONSTRAINT = re.compile(
    r"\s*(node\.(id|hostname|role|platform\.os|platform\.arch|labels\.[\w.-]+)"
    r"|engine\.labels\.[\w.-]+)\s*(==|!=)\s*[\w.:/-]+\s*"
)


def _lower_keys(data: dict[Any, Any]) -> dict[str, Any]:
    return {str(key).lower(): value for key, value in data.items()}


ANY_SCRIPT_PATH = Path("/")
"""`scripts_under` that lets an FDL name a script file anywhere (the CLI's explicit opt-in)."""


def parse_fdl(path: Path, *, scripts_under: Path | None = None) -> list[tuple[str, Service]]:
    """The services of an FDL file, each with the id of the cluster it is meant for.

    The format is oscar-cli's: `functions: oscar: - <cluster-id>: {service}`, with `script` the
    path of a file relative to the FDL (or, as an oscar-py extension, the script text itself when
    it spans several lines), and an optional top-level `storage_providers` shared by all services.
    A script file must lie under `scripts_under` (default: the FDL's own directory), so that an
    FDL from elsewhere cannot make whoever applies it read `/etc/shadow` or `../../secret`.
    """
    try:
        text = path.read_text()
    except OSError as error:
        raise ServiceDefinitionError(f"{path}: cannot read: {error.strerror or error}") from None
    root = scripts_under if scripts_under is not None else path.parent
    return parse_fdl_text(text, str(path), base=path.parent, scripts_under=root)


def parse_fdl_text(
    text: str, source: str, *, base: Path | None = None, scripts_under: Path | None = None
) -> list[tuple[str, Service]]:
    """The services of FDL `text` (named `source` in errors). Without `base`, as for an uploaded
    FDL, no file is read: every script must be inline (a multi-line YAML block)."""
    try:
        document = _load_yaml(text)
    except yaml.YAMLError as error:
        raise ServiceDefinitionError(f"{source}: not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise ServiceDefinitionError(f"{source}: expected a mapping with a 'functions' key")
    document = _lower_keys(document)
    functions = document.get("functions")
    if not isinstance(functions, dict):
        raise ServiceDefinitionError(f"{source}: functions: expected a mapping with an 'oscar' key")
    entries = _lower_keys(functions).get("oscar")
    if not isinstance(entries, list) or not entries:
        raise ServiceDefinitionError(
            f"{source}: functions.oscar: expected a list of '<cluster-id>: <service>' entries"
        )
    shared_providers = document.get("storage_providers") or {}
    if not isinstance(shared_providers, dict):
        raise ServiceDefinitionError(f"{source}: storage_providers: expected a mapping")
    file_warnings = _fdl_warnings(document)
    scripts = _ScriptFiles(source, base, scripts_under)
    services: list[tuple[str, Service]] = []
    for index, entry in enumerate(entries):
        where = f"functions.oscar[{index}]"
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ServiceDefinitionError(
                f"{source}: {where}: expected one '<cluster-id>: <service>' mapping"
            )
        ((cluster_id, body),) = entry.items()
        where = f"{where}.{cluster_id}"
        if not isinstance(body, dict):
            raise ServiceDefinitionError(f"{source}: {where}: expected the service's settings")
        data = scripts.with_script_text(body, where)
        data = _with_shared_providers(data, shared_providers)
        try:
            service = parse_service(data, where=where)
        except ServiceDefinitionError as error:
            raise ServiceDefinitionError(f"{source}: {error}") from None
        service._warnings = file_warnings + service._warnings
        services.append((str(cluster_id), service))
    return services


class _ScriptFiles:
    """Reads the script files an FDL names, only beneath `scripts_under` (none without `base`)."""

    def __init__(self, source: str, base: Path | None, scripts_under: Path | None) -> None:
        self.source = source
        self.base = base
        self.root = (scripts_under or base or ANY_SCRIPT_PATH).resolve()

    def with_script_text(self, body: dict[Any, Any], where: str) -> dict[str, Any]:
        data = dict(body)
        key = next((key for key in data if str(key).lower() == "script"), None)
        if key is None or not isinstance(data[key], str) or "\n" in data[key]:
            return data  # absent, malformed or inline: validation reports it or takes it as is
        named = data[key].strip()
        field = f"{self.source}: {where}.script"
        if self.base is None:
            # Said before any file is touched: the answer tells nothing about the server's files.
            raise ServiceDefinitionError(
                f"{field}: {named!r} names a file, but an uploaded FDL can only carry its "
                "script inline (a multi-line `script: |` block)"
            )
        script_path = (self.base / named).resolve()
        if not script_path.is_relative_to(self.root):
            raise ServiceDefinitionError(
                f"{field}: {named!r} is outside {self.root}; keep scripts beside the FDL "
                "(or allow other paths explicitly)"
            )
        try:
            data[key] = script_path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise ServiceDefinitionError(f"{field}: cannot read {script_path}: {reason}") from None
        return data


def _load_yaml(text: str) -> Any:
    """The FDL's YAML. Go's parser, which OSCAR's tools use, accepts tabs after a value (some of
    OSCAR's own examples have them); PyYAML does not, so a file it refuses is read again with
    trailing blanks removed (inline scripts' too, which no shell minds) before the error is
    reported."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        stripped = re.sub(r"[ \t]+$", "", text, flags=re.MULTILINE)
        if stripped == text:
            raise
        try:
            return yaml.safe_load(stripped)
        except yaml.YAMLError:
            pass
        raise


#: An FDL's top-level keys besides `functions` and `storage_providers`, with what is lost.
_FDL_ONLY_KEYS = {"clusters": _DELEGATION}


def _fdl_warnings(document: dict[str, Any]) -> list[str]:
    """Warnings for an FDL's own top-level keys, given to each of its services."""
    warnings: list[str] = []
    for key, value in document.items():
        if key in ("functions", "storage_providers"):
            continue
        loss = _FDL_ONLY_KEYS.get(key)
        if loss is None:
            warnings.append(f"{key}: unknown key, ignored")
        elif not _is_zero(value):
            warnings.append(f"{key}: not supported by oscar-py, ignored: {loss}")
    return warnings


def _with_shared_providers(data: dict[str, Any], shared: dict[Any, Any]) -> dict[str, Any]:
    """Merge the FDL's top-level providers under the service's own (the service's win)."""
    if not shared:
        return data
    key = next((key for key in data if str(key).lower() == "storage_providers"), None)
    own = data.get(key) if key is not None else None
    merged: dict[str, Any] = {}
    for kind, entries in _lower_keys(shared).items():
        merged[kind] = dict(entries or {})
    for kind, entries in _lower_keys(own or {}).items():
        merged.setdefault(kind, {}).update(entries or {})
    data = {k: v for k, v in data.items() if k != key}
    data["storage_providers"] = merged
    return data
