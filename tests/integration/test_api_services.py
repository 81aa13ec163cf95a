"""The OSCAR routes for system and services, called in-process on the platform `oscar serve`
builds; S3 clients reach its S3 app over a real socket."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from oscarpy.db import Database
from oscarpy.services.registry import ServiceRegistry
from oscarpy.storage.store import ObjectStore
from tests.support.inprocess import InProcessServer, in_process_server
from tests.support.oscar import oscar_export


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """One platform for the module: each test uses its own service names."""
    data = tmp_path_factory.mktemp("api") / "data"
    with in_process_server(
        data, password="api-tests-password", signin_free_failures=1000000
    ) as running:
        yield running


@pytest.fixture
def client(api: InProcessServer) -> Iterator[httpx.Client]:
    with api.client(follow_redirects=False) as client:
        yield client


def definition(name: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "image": "oscar-test/busybox:latest",
        "script": "#!/bin/sh\ncp $INPUT_FILE_PATH $TMP_OUTPUT_DIR/\n",
        "input": [{"storage_provider": "minio.default", "path": f"{name}/input"}],
        "output": [{"storage_provider": "minio.default", "path": f"{name}/output"}],
    }
    data.update(overrides)
    return data


def server_store(api: InProcessServer) -> ObjectStore:
    """The server's embedded store, opened on its data directory (the same DB and blobs)."""
    return ObjectStore(Database(f"sqlite:///{api.data_dir / 'oscar.db'}"), api.data_dir)


def stored_service(api: InProcessServer, name: str) -> Any:
    """The service as the server stored it (secrets included), read from its state DB."""
    store = server_store(api)
    try:
        return ServiceRegistry(store.database, store).get(name)
    finally:
        store.database.close()


def test_lifecycle_in_the_order_of_oscars_end_to_end_suite(
    api: InProcessServer, client: httpx.Client
) -> None:
    for path in ("/health", "/health/"):
        health = api.client(authenticated=False).get(path)
        assert (health.status_code, health.text) == (200, "Ok")

    config = client.get("/system/config")
    assert config.status_code == 200
    provider = config.json()["minio_provider"]
    assert provider == {
        "endpoint": api.s3_url,
        "verify": True,
        "access_key": api.username,
        "secret_key": api.password,
        "region": "us-east-1",
    }
    # OSCAR v4's shape: the cluster's settings under `config` (OSCAR's dashboard reads them).
    cluster = config.json()["config"]
    assert {"name", "namespace", "services_namespace", "gpu_available", "oidc_groups"} <= set(
        cluster
    )

    info = client.get("/system/info").json()
    assert info["version"] and info["kubernetes_version"] == ""
    assert set(info) == {
        "version",
        "git_commit",
        "architecture",
        "kubernetes_version",
        "serverless_backend",
    }

    status = client.get("/system/status").json()
    node = status["cluster"]["nodes"][0]
    assert status["cluster"]["nodes_count"] == 1
    assert node["cpu"]["capacity_cores"] >= 1000 and node["memory"]["capacity_bytes"] > 0
    assert node["running_jobs"] == 0
    # Reserved by running jobs, and free: all of it while nothing runs.
    assert node["cpu"]["reserved_cores"] == 0 and node["memory"]["reserved_bytes"] == 0
    assert node["cpu"]["free_cores"] == node["cpu"]["capacity_cores"]
    assert node["memory"]["free_bytes"] == node["memory"]["capacity_bytes"]
    assert node["availability"] == "active" and node["status"] == "Ready"
    buckets_before = status["minio"]["buckets_count"]

    created = client.post(
        "/system/services", json=definition("lifecycle", token="mine", owner="someone")
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert re.fullmatch(r"[0-9a-f]{64}", token)

    listed = client.get("/system/services")
    assert listed.status_code == 200
    assert "lifecycle" in [service["name"] for service in listed.json()]

    read = client.get("/system/services/lifecycle")
    assert read.status_code == 200
    body = read.json()
    assert body["token"] == token and body["owner"] == "cluster_admin"
    assert body["input"][0]["path"] == "lifecycle/input"
    assert client.get("/system/status").json()["minio"]["buckets_count"] == buckets_before + 1

    body["memory"] = "512Mi"
    body["token"] = ""
    updated = client.put("/system/services", json=body)
    assert (updated.status_code, updated.content) == (204, b"")
    again = client.get("/system/services/lifecycle").json()
    assert again["memory"] == "512Mi" and again["token"] == token

    deleted = client.delete("/system/services/lifecycle")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert client.get("/system/services/lifecycle").status_code == 404


def test_creating_makes_buckets_and_folders(api: InProcessServer, client: httpx.Client) -> None:
    data = definition(
        "shapes",
        input=[{"path": "shared-media/shapes-in"}],
        output=[{"path": "shapes/out"}, {"path": "shapes-results/"}],
    )
    assert client.post("/system/services", json=data).status_code == 201
    # A second service may read from another folder of the same bucket.
    other = definition("colours", input=[{"path": "shared-media/colours-in"}], output=[])
    assert client.post("/system/services", json=other).status_code == 201
    store = server_store(api)
    try:
        assert {"shared-media", "shapes", "shapes-results"} <= set(store.list_buckets())
        keys = [info.key for info in store.list_objects("shared-media")]
        assert keys == ["colours-in/", "shapes-in/"]
        assert [info.key for info in store.list_objects("shapes")] == ["out/"]
        assert list(store.list_objects("shapes-results")) == []
    finally:
        store.database.close()


def test_config_credentials_reach_the_service_folders_over_s3(client: httpx.Client) -> None:
    """What OSCAR clients do: read `/system/config`, then move files with any S3 client."""
    provider = client.get("/system/config").json()["minio_provider"]
    s3 = boto3.client(
        "s3",
        endpoint_url=provider["endpoint"],
        aws_access_key_id=provider["access_key"],
        aws_secret_access_key=provider["secret_key"],
        region_name=provider["region"],
        verify=provider["verify"],
    )
    assert client.post("/system/services", json=definition("via-s3")).status_code == 201
    listed = s3.list_objects_v2(Bucket="via-s3")["Contents"]
    assert [item["Key"] for item in listed] == ["input/", "output/"]
    s3.put_object(Bucket="via-s3", Key="input/photo.jpg", Body=b"jpeg")
    assert s3.get_object(Bucket="via-s3", Key="input/photo.jpg")["Body"].read() == b"jpeg"


def test_duplicate_name_is_409_and_keeps_the_first(client: httpx.Client) -> None:
    assert client.post("/system/services", json=definition("twice")).status_code == 201
    again = client.post("/system/services", json=definition("twice", image="other:1"))
    assert again.status_code == 409
    assert again.text == "a service named 'twice' already exists; update it with PUT instead"
    assert client.get("/system/services/twice").json()["image"] == "oscar-test/busybox:latest"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (definition("bad-memory", memory="lots"), "memory: 'lots' is not a quantity"),
        (
            definition(
                "on-onedata",
                output=[{"storage_provider": "onedata.od", "path": "space/out"}],
                storage_providers={"onedata": {"od": {"oneprovider_host": "h", "token": "t"}}},
            ),
            "output[0].storage_provider: 'onedata.od': Onedata storage is not supported",
        ),
        (definition("Bad_Name"), "name: 'Bad_Name' is not a valid service name"),
        (
            definition("looping", output=[{"path": "looping/input/out"}]),
            "output[0].path: minio.default:looping/input/out is inside input[0]",
        ),
        ({"image": "i", "script": "s"}, "name: is required"),
        ([definition("a-list")], "must be an object"),
    ],
)
def test_invalid_definitions_are_400_naming_the_field(
    client: httpx.Client, body: Any, detail: str
) -> None:
    for method in ("POST", "PUT"):
        answer = client.request(method, "/system/services", json=body)
        assert answer.status_code == 400, answer.text
        assert detail in answer.text


def test_a_service_exported_from_oscar_is_accepted_unchanged_without_warnings(
    api: InProcessServer, client: httpx.Client
) -> None:
    exported = oscar_export(definition("exported"))
    created = client.post("/system/services", json=exported)
    assert created.status_code == 201, created.text
    assert created.json()["warnings"] == []
    shown = client.get("/system/services/exported").json()
    assert shown["log_level"] == "NOTSET" and shown["token"] != "f" * 64
    assert not {"namespace", "volume_status", "deployment"} & set(shown)
    # OSCAR's own MinIO placeholder is the embedded store here: the buckets were made there.
    assert shown["storage_providers"]["minio"] == {}
    store = server_store(api)
    try:
        assert store.bucket_exists("exported")
    finally:
        store.database.close()
    assert client.put("/system/services", json=exported).status_code == 204


def test_dropped_and_unhonoured_keys_are_listed_in_the_answers_warnings(
    client: httpx.Client,
) -> None:
    body = definition("warned", memroy="1Gi", kserve={"type": "inference", "storage_uri": "x"})
    created = client.post("/system/services", json=body)
    assert created.status_code == 201, created.text
    warnings = created.json()["warnings"]
    assert warnings[0] == "memroy: unknown key, ignored"
    assert warnings[1].startswith("kserve: not supported by oscar-py, ignored: KServe")
    shown = client.get("/system/services/warned").json()
    assert "memroy" not in shown and shown["kserve"]["storage_uri"] == "x"
    updated = client.put("/system/services", json={**body, "interlink_node_name": "vk"})
    assert updated.status_code == 200, updated.text
    assert len(updated.json()["warnings"]) == 3
    assert updated.json()["name"] == "warned"
    clean = definition("warned")
    assert client.put("/system/services", json=clean).status_code == 204


def test_a_body_that_is_not_json_is_400(client: httpx.Client) -> None:
    answer = client.post(
        "/system/services", content=b"name: yaml", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.text == "the body is not a JSON service definition"


def test_absent_services_are_404(client: httpx.Client) -> None:
    assert client.get("/system/services/absent").text == "no service named 'absent'"
    assert client.get("/system/services/absent").status_code == 404
    assert client.put("/system/services", json=definition("absent")).status_code == 404
    assert client.delete("/system/services/absent").status_code == 404
    # A name no service can have is simply absent, whatever its bytes.
    assert client.get("/system/services/" + "x" * 300).status_code == 404
    assert client.get("/system/services/%00nul").status_code == 404


def test_the_delete_buckets_flag_must_be_a_boolean(client: httpx.Client) -> None:
    answer = client.delete("/system/services/absent", params={"delete_buckets": "perhaps"})
    assert answer.status_code == 400 and "delete_buckets" in answer.text


def test_secrets_are_hidden_in_answers_and_kept_by_a_put_of_what_get_showed(
    api: InProcessServer, client: httpx.Client
) -> None:
    """Secret values are answered blank; the owner (here the admin) gets the providers'
    credentials, as OSCAR answers them, so that its storage clients work."""
    data = definition(
        "secretive",
        environment={"Variables": {"MODE": "fast"}, "Secrets": {"API_KEY": "k-9f8e7d6c5b"}},
        output=[{"storage_provider": "s3.aws", "path": "results-bucket/out"}],
        storage_providers={
            "s3": {"aws": {"access_key": "AKIAEXAMPLE", "secret_key": "sk-aws-1a2b3c4d"}}
        },
    )
    created = client.post("/system/services", json=data)
    assert created.status_code == 201
    for shown in (created.json(), client.get("/system/services/secretive").json()):
        assert shown["environment"] == {"variables": {"MODE": "fast"}, "secrets": {"API_KEY": ""}}
        assert shown["storage_providers"]["s3"]["aws"]["secret_key"] == "sk-aws-1a2b3c4d"
        assert shown["storage_providers"]["s3"]["aws"]["access_key"] == "AKIAEXAMPLE"
    listed = client.get("/system/services").text
    assert "k-9f8e7d6c5b" not in listed and "sk-aws-1a2b3c4d" in listed
    # What an older answer showed (`hidden`) still keeps the stored key.
    hidden = client.get("/system/services/secretive").json()
    hidden["storage_providers"]["s3"]["aws"]["secret_key"] = "hidden"
    assert client.put("/system/services", json=hidden).status_code == 204
    assert stored_service(api, "secretive").storage_providers.s3["aws"].secret_key == (
        "sk-aws-1a2b3c4d"
    )

    shown = client.get("/system/services/secretive").json()
    shown["image"] = "oscar-test/busybox:2"
    assert client.put("/system/services", json=shown).status_code == 204
    stored = stored_service(api, "secretive")
    assert stored.image == "oscar-test/busybox:2"
    assert stored.environment.secrets == {"API_KEY": "k-9f8e7d6c5b"}
    assert stored.storage_providers.s3["aws"].secret_key == "sk-aws-1a2b3c4d"

    # A new value replaces the stored one.
    shown["environment"]["secrets"]["API_KEY"] = "k-rotated-42"
    assert client.put("/system/services", json=shown).status_code == 204
    assert stored_service(api, "secretive").environment.secrets == {"API_KEY": "k-rotated-42"}
    log = api.log()
    for secret in ("k-9f8e7d6c5b", "sk-aws-1a2b3c4d", "k-rotated-42", api.password):
        assert secret not in log


def test_delete_keeps_files_unless_delete_buckets_is_given(
    api: InProcessServer, client: httpx.Client, tmp_path: Path
) -> None:
    store = server_store(api)
    result = tmp_path / "result.txt"
    result.write_bytes(b"precious")
    try:
        assert client.post("/system/services", json=definition("keeper")).status_code == 201
        store.put_file("keeper", "output/result.txt", result)
        assert client.delete("/system/services/keeper").status_code == 204
        assert store.head("keeper", "output/result.txt") is not None

        assert client.post("/system/services", json=definition("keeper")).status_code == 201
        answer = client.delete("/system/services/keeper", params={"delete_buckets": "true"})
        assert answer.status_code == 204
        assert not store.bucket_exists("keeper")
    finally:
        store.database.close()


SYSTEM_ROUTES = [
    ("GET", "/system/info"),
    ("GET", "/system/config"),
    ("GET", "/system/status"),
    ("GET", "/system/services"),
    ("POST", "/system/services"),
    ("PUT", "/system/services"),
    ("GET", "/system/services/guarded"),
    ("DELETE", "/system/services/guarded"),
]


def test_every_system_route_refuses_wrong_credentials(
    api: InProcessServer, client: httpx.Client
) -> None:
    created = client.post("/system/services", json=definition("guarded"))
    token = created.json()["token"]
    wrong = [
        {},
        {"Authorization": "Basic " + _basic(api.username, "not-the-password")},
        {"Authorization": "Basic " + _basic("someone", api.password)},
        {"Authorization": "Basic !!not-base64!!"},
        {"Authorization": f"Bearer {token}"},  # a service token opens only its own routes
    ]
    for method, path in SYSTEM_ROUTES:
        for headers in wrong:
            answer = api.client(authenticated=False).request(
                method, path, headers=headers, json=definition("guarded")
            )
            assert answer.status_code == 401, (method, path, headers)
            assert answer.headers["www-authenticate"] == 'Basic realm="oscar"'
            assert answer.text == "Invalid or missing credentials"
    assert client.get("/system/services/guarded").status_code == 200  # nothing changed


@pytest.mark.parametrize(("method", "path"), SYSTEM_ROUTES)
def test_trailing_slashes_answer_the_same_without_redirect(
    client: httpx.Client, method: str, path: str
) -> None:
    path = path.replace("guarded", "slashed")
    body = definition("slashed") if method in ("POST", "PUT") else None
    codes = []
    for suffix in ("", "/"):
        # The same starting state for both calls: POST needs the service absent, others present.
        client.delete("/system/services/slashed")
        if method != "POST":
            client.post("/system/services", json=definition("slashed"))
        codes.append(client.request(method, path + suffix, json=body).status_code)
    assert codes[0] == codes[1] and codes[0] in (200, 201, 204), codes


def test_a_method_a_path_lacks_is_405_naming_every_method_it_has(client: httpx.Client) -> None:
    answer = client.request("PATCH", "/system/services/anything")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "DELETE, GET"
    assert answer.text == "Method Not Allowed"
    assert client.request("OPTIONS", "/system/services/").headers["allow"] == "GET, POST, PUT"


def test_openapi_document_describes_routes_auth_and_errors(api: InProcessServer) -> None:
    document = api.client().get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["adminBasic"] == {
        "type": "http",
        "scheme": "basic",
        "description": "The admin's user and password.",
    }
    services = document["paths"]["/system/services"]
    assert set(services) == {"get", "post", "put"}
    assert set(services["post"]["responses"]) == {"201", "400", "401", "409"}
    assert set(services["put"]["responses"]) == {"200", "204", "400", "401", "403", "404"}
    body_schema = services["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/ServiceDefinition"}
    definition_schema = document["components"]["schemas"]["ServiceDefinition"]
    assert definition_schema["required"] == ["name", "image", "script"]
    # Go clients send null for unset settings, and cpu may be a number.
    assert {"type": "null"} in definition_schema["properties"]["retries"]["anyOf"]
    assert {"type": "number"} in definition_schema["properties"]["cpu"]["anyOf"]
    one = document["paths"]["/system/services/{service_name}"]
    assert set(one["delete"]["responses"]) == {"204", "400", "401", "403", "404"}
    assert all(
        "422" not in operation["responses"]
        for operations in document["paths"].values()
        for operation in operations.values()
    )
    # Either the admin's Basic credentials or a user's OIDC token.
    assert document["paths"]["/system/status"]["get"]["security"] == [
        {"adminBasic": []},
        {"oidcToken": []},
    ]
    service_schema = document["components"]["schemas"]["Service"]
    assert {"name", "image", "script"} <= set(service_schema["required"])
    assert "alpine" in service_schema["properties"]  # OSCAR-only keys are documented


def _basic(username: str, password: str) -> str:
    import base64

    return base64.b64encode(f"{username}:{password}".encode()).decode()


def test_config_secret_is_never_logged(api: InProcessServer, client: httpx.Client) -> None:
    assert client.get("/system/config").status_code == 200
    assert api.password not in api.log()
    assert json.loads(client.get("/system/config").text)["minio_provider"]["secret_key"]
