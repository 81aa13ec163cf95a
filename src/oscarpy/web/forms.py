"""The service form: a `Service` shown as form fields, and submitted fields turned back into a
definition that `parse_service` validates, exactly as the REST API validates a JSON body.

Fields the form does not show (storage providers, labels, annotations, OSCAR-only settings)
are carried over from the stored definition on edit, so that editing from the dashboard never
drops what an FDL file set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from oscarpy.services.model import Service, StoragePath


@dataclass
class PathRow:
    path: str = ""
    provider: str = "minio.default"
    prefix: str = ""
    suffix: str = ""


@dataclass
class ServiceForm:
    """What the service form shows; strings as typed, so that a refused form comes back intact."""

    name: str = ""
    image: str = ""
    script: str = "#!/bin/sh\n"
    cpu: str = "0.2"
    memory: str = "256Mi"
    variables: str = ""
    secrets: str = ""
    inputs: list[PathRow] = field(default_factory=list)
    outputs: list[PathRow] = field(default_factory=list)
    max_concurrency: str = ""
    timeout: str = ""
    retries: str = "0"
    log_level: str = "INFO"

    @classmethod
    def of(cls, service: Service) -> ServiceForm:
        """The form of a stored service; secret values are not shown (blank keeps them)."""
        return cls(
            name=service.name,
            image=service.image,
            script=service.script,
            cpu=service.cpu,
            memory=service.memory,
            variables=_lines(service.environment.variables),
            secrets="".join(f"{name}=\n" for name in service.environment.secrets),
            inputs=[_row(path) for path in service.input],
            outputs=[_row(path) for path in service.output],
            max_concurrency=str(service.max_concurrency or ""),
            timeout=_number(service.timeout),
            retries=str(service.retries),
            log_level=service.log_level,
        )

    @classmethod
    def from_submission(cls, form: FormData) -> ServiceForm:
        return cls(
            name=_text(form, "name").strip(),
            image=_text(form, "image").strip(),
            script=_text(form, "script").replace("\r\n", "\n"),
            cpu=_text(form, "cpu").strip(),
            memory=_text(form, "memory").strip(),
            variables=_text(form, "variables"),
            secrets=_text(form, "secrets"),
            inputs=_rows(form, "input"),
            outputs=_rows(form, "output"),
            max_concurrency=_text(form, "max_concurrency").strip(),
            timeout=_text(form, "timeout").strip(),
            retries=_text(form, "retries").strip(),
            log_level=_text(form, "log_level").strip() or "INFO",
        )

    def definition(self, stored: Service | None = None) -> dict[str, Any]:
        """The JSON definition to validate: the stored one with the form's fields laid over.

        Raises `ValueError` for a field the form itself cannot read (a malformed line).
        """
        data: dict[str, Any] = stored.to_json() if stored is not None else {}
        data.update(
            name=self.name,
            image=self.image,
            script=self.script,
            cpu=self.cpu,
            memory=self.memory,
            log_level=self.log_level,
            environment={
                "variables": _pairs(self.variables, "environment variables"),
                "secrets": _pairs(self.secrets, "secrets"),
            },
            input=[_path(row) for row in self.inputs if row.path.strip()],
            output=[_path(row) for row in self.outputs if row.path.strip()],
            max_concurrency=_optional_number(self.max_concurrency, "max concurrency", int),
            timeout=_optional_number(self.timeout, "timeout", float),
            retries=_optional_number(self.retries, "retries", int) or 0,
        )
        data.pop("token", None)
        data.pop("owner", None)
        return data

    def with_blank_rows(self) -> ServiceForm:
        """One empty input and output row to fill in, after the existing ones."""
        self.inputs = [*self.inputs, PathRow()]
        self.outputs = [*self.outputs, PathRow()]
        return self


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _texts(form: FormData, name: str) -> list[str]:
    return [value if isinstance(value, str) else "" for value in form.getlist(name)]


def _rows(form: FormData, kind: str) -> list[PathRow]:
    paths = _texts(form, f"{kind}_path")
    providers = _texts(form, f"{kind}_provider")
    prefixes = _texts(form, f"{kind}_prefix")
    suffixes = _texts(form, f"{kind}_suffix")

    def at(values: list[str], index: int, default: str = "") -> str:
        return values[index].strip() if index < len(values) else default

    return [
        PathRow(
            path=path.strip(),
            provider=at(providers, index) or "minio.default",
            prefix=at(prefixes, index),
            suffix=at(suffixes, index),
        )
        for index, path in enumerate(paths)
    ]


def _row(path: StoragePath) -> PathRow:
    return PathRow(
        path=path.path,
        provider=path.storage_provider,
        prefix=", ".join(path.prefix),
        suffix=", ".join(path.suffix),
    )


def _path(row: PathRow) -> dict[str, Any]:
    return {
        "storage_provider": row.provider,
        "path": row.path,
        "prefix": _list(row.prefix),
        "suffix": _list(row.suffix),
    }


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _lines(values: dict[str, str]) -> str:
    return "".join(f"{name}={value}\n" for name, value in values.items())


def _pairs(text: str, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, separator, value = line.partition("=")
        if not separator or not name.strip():
            raise ValueError(f"{what}, line {number}: write NAME=value (got {line.strip()!r})")
        pairs[name.strip()] = value
    return pairs


def _optional_number(text: str, what: str, kind: type[int] | type[float]) -> Any:
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise ValueError(f"{what}: {text!r} is not {expected}") from None


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)
