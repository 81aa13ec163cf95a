"""`expose` as OSCAR's clients send it: defaults, Go's zero values, and bad values named."""

from __future__ import annotations

from typing import Any

import pytest

from oscarpy.services.errors import ServiceDefinitionError
from oscarpy.services.expose import ExposeSettings
from oscarpy.services.model import parse_service


def _service(expose: Any, **more: Any) -> dict[str, Any]:
    return {"name": "web", "image": "busybox", "script": "httpd", "expose": expose, **more}


def test_oscar_defaults_apply_and_go_zero_values_mean_them() -> None:
    service = parse_service(
        _service({"api_port": [8080], "max_scale": 0, "cpu_threshold": 0, "health_path": ""})
    )
    assert service.expose_settings() == ExposeSettings(api_port=8080)
    assert service.warnings == []
    assert service.exposed_base_path() == "/system/services/web/exposed"


def test_no_api_port_exposes_nothing() -> None:
    service = parse_service(_service({"min_scale": 0, "max_scale": 0, "api_port": []}))
    assert service.expose_settings() is None
    assert service.exposed_base_path() == ""


@pytest.mark.parametrize(
    ("expose", "more", "named"),
    [
        ({"api_port": 70000}, {}, "expose.api_port: 70000 is out of range"),
        ({"api_port": "http"}, {}, "expose.api_port: 'http' is not a whole number"),
        ({"api_port": 80, "min_scale": 3, "max_scale": 2}, {}, "expose.max_scale: 2 is below"),
        ({"api_port": 80, "set_auth": "yes"}, {}, "expose.set_auth: 'yes' is not true or false"),
        ({"api_port": 80, "health_path": "health"}, {}, "expose.health_path: 'health'"),
        ({"api_port": 80}, {"network": "none"}, "an exposed service needs a network"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(
    expose: dict[str, Any], more: dict[str, Any], named: str
) -> None:
    with pytest.raises(ServiceDefinitionError, match=named.replace("(", r"\(")):
        parse_service(_service(expose, **more))
