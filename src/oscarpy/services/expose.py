"""OSCAR's `expose` section: a service that runs as long-lived HTTP servers, not per event.

The section stays a plain map in the definition (kept and returned as given, as OSCAR's
answers carry it); `ExposeSettings.of` reads it with OSCAR's defaults and validates it, so
that a bad value is refused at create time with the key named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ExposeSettings"]

_DEFAULTS: dict[str, Any] = {
    "min_scale": 1,
    "max_scale": 10,
    "cpu_threshold": 80,
    "set_auth": False,
    "rewrite_target": False,
    "default_command": False,
    "health_path": "/",
}

#: Go's zero value, as OSCAR's clients send for a setting not given, means the default.
_ZERO_IS_DEFAULT = frozenset({"max_scale", "cpu_threshold", "health_path"})


def _int(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expose.{key}: {value!r} is not a whole number")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"expose.{key}: {value!r} is not a whole number") from None
    if not low <= number <= high:
        raise ValueError(f"expose.{key}: {number} is out of range; give {low} to {high}")
    return number


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"expose.{key}: {value!r} is not true or false")


@dataclass(frozen=True)
class ExposeSettings:
    """The `expose` section with OSCAR's defaults applied."""

    api_port: int
    min_scale: int = 1
    max_scale: int = 10
    cpu_threshold: int = 80
    set_auth: bool = False
    rewrite_target: bool = False
    default_command: bool = False
    health_path: str = "/"

    @classmethod
    def of(cls, section: Any) -> ExposeSettings | None:
        """The settings of a definition's `expose` value; `None` when it exposes nothing (no
        `api_port`, as OSCAR's answers carry for every service). Raises `ValueError` naming
        the key for a bad value."""
        if section is None:
            return None
        if not isinstance(section, dict):
            raise ValueError(f"expose: {section!r} is not a map of settings")
        values = {str(key).lower(): value for key, value in section.items()}
        port = values.get("api_port")
        if isinstance(port, list):  # OSCAR v4 takes a list; the first port is the API's
            port = port[0] if port else None
        if port in (None, "", 0, "0"):
            return None
        settings: dict[str, Any] = dict(_DEFAULTS)
        for key, value in values.items():
            if value is None or (value in (0, "0", "") and key in _ZERO_IS_DEFAULT):
                continue
            if key in _DEFAULTS:  # others are ignored, as OSCAR ignores them
                settings[key] = value
        min_scale = _int(settings["min_scale"], "min_scale", 0, 100)
        max_scale = _int(settings["max_scale"], "max_scale", 1, 100)
        if max_scale < min_scale:
            raise ValueError(f"expose.max_scale: {max_scale} is below min_scale {min_scale}")
        health_path = str(settings["health_path"] or "/")
        if not health_path.startswith("/") or any(c in health_path for c in "\r\n\x00#"):
            raise ValueError(f"expose.health_path: {health_path!r} is not a path such as /health")
        return cls(
            api_port=_int(port, "api_port", 1, 65535),
            min_scale=min_scale,
            max_scale=max_scale,
            cpu_threshold=_int(settings["cpu_threshold"], "cpu_threshold", 1, 100),
            set_auth=_bool(settings["set_auth"], "set_auth"),
            rewrite_target=_bool(settings["rewrite_target"], "rewrite_target"),
            default_command=_bool(settings["default_command"], "default_command"),
            health_path=health_path,
        )
