"""Which cluster a command talks to, and how the config file is read and written."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from oscarpy.cli.clusters import Cluster, ClusterConfig, load_config
from oscarpy.cli.errors import ConfigError


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("OSCAR_DATA_DIR", str(tmp_path / "data"))


def _cluster(port: int) -> Cluster:
    return Cluster(endpoint=f"http://127.0.0.1:{port}", auth_user="u", auth_password="p")


def test_first_cluster_added_becomes_default_and_survives_a_round_trip(tmp_path: Path) -> None:
    config = load_config()
    config.add("a", _cluster(1))
    config.add("b", _cluster(2))
    config.save()

    again = load_config()

    assert again.default == "a"
    assert again.clusters["b"] == _cluster(2)
    assert stat.S_IMODE((tmp_path / ".oscar" / "config.yaml").stat().st_mode) == 0o600


def test_resolve_prefers_named_then_default_then_only(tmp_path: Path) -> None:
    config = ClusterConfig(path=tmp_path / "c.yaml")
    config.add("a", _cluster(1))
    config.add("b", _cluster(2))

    assert config.resolve("b")[0] == "b"
    assert config.resolve(None)[0] == "a"
    config.remove("a")
    assert config.resolve(None)[0] == "b"


def test_several_clusters_without_default_must_be_chosen(tmp_path: Path) -> None:
    config = ClusterConfig(path=tmp_path / "c.yaml", clusters={"a": _cluster(1), "b": _cluster(2)})

    with pytest.raises(ConfigError, match="-c ID"):
        config.resolve(None)


def test_local_server_is_the_fallback_when_nothing_is_configured(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "credentials.json").write_text(
        json.dumps({"username": "oscar", "password": "pw", "endpoint": "http://127.0.0.1:8080"})
    )

    cluster_id, cluster = ClusterConfig(path=tmp_path / "c.yaml").resolve(None)

    assert cluster_id == "local"
    assert (cluster.endpoint, cluster.auth_user, cluster.auth_password) == (
        "http://127.0.0.1:8080",
        "oscar",
        "pw",
    )


def test_credentials_without_endpoint_are_not_a_fallback(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "credentials.json").write_text(json.dumps({"username": "oscar", "password": "pw"}))

    with pytest.raises(ConfigError, match="oscar serve"):
        ClusterConfig(path=tmp_path / "c.yaml").resolve(None)


def test_json_config_files_are_read_and_written_as_json(tmp_path: Path) -> None:
    path = tmp_path / "clusters.json"
    config = load_config(path)
    config.add("a", _cluster(1))
    config.save()

    assert json.loads(path.read_text())["oscar"]["a"]["auth_user"] == "u"
    assert load_config(path).clusters["a"] == _cluster(1)


def test_cluster_without_endpoint_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("oscar:\n  broken:\n    auth_user: u\n")

    with pytest.raises(ConfigError, match="'broken' has no endpoint"):
        load_config(path)


def test_oscar_cli_oidc_clusters_are_read_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "oscar:\n  egi:\n    endpoint: https://oscar.egi.eu\n    oidc_token: tok\n"
        "    oidc_account_name: egi\n  basic:\n    endpoint: http://h\n    auth_user: u\n"
    )

    config = load_config(path)
    config.save()
    saved = load_config(path)

    assert saved.clusters["egi"].oidc_token == "tok" and saved.clusters["egi"].auth_user == ""
    assert "oidc_token" not in path.read_text().split("basic:")[1]
