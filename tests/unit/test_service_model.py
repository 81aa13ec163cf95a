"""The service definition model: OSCAR's JSON as its clients send it, and what we refuse."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from oscarpy.services.model import (
    DEFAULT_PROVIDER,
    Service,
    ServiceDefinitionError,
    StoragePath,
    parse_service,
)
from oscarpy.services.quantities import parse_quantity
from tests.support.oscar import OSCAR_MINIO_DEFAULT


def definition(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "grayify", "image": "busybox", "script": "echo hi"}
    data.update(overrides)
    return data


def problem(data: dict[str, Any]) -> str:
    with pytest.raises(ServiceDefinitionError) as caught:
        parse_service(data)
    return str(caught.value)


def test_defaults_are_oscars() -> None:
    service = parse_service(definition())
    assert (service.cpu, service.memory, service.log_level) == ("0.2", "256Mi", "INFO")
    assert service.visibility == "private"
    assert service.cpu_cores == pytest.approx(0.2)
    assert service.memory_bytes == 256 * 2**20
    assert (service.max_concurrency, service.timeout, service.retries) == (None, None, 0)


def test_keys_are_case_insensitive_at_every_level() -> None:
    service = parse_service(
        {
            "Name": "grayify",
            "IMAGE": "busybox",
            "Script": "echo",
            "Environment": {"Variables": {"MY_Var": "x"}, "Secrets": {"Key": "s3cret"}},
            "Input": [{"Storage_Provider": "minio.default", "Path": "images/in"}],
        }
    )
    # Keys of user maps keep their case: they are names the script sees.
    assert service.environment.variables == {"MY_Var": "x"}
    assert service.environment.secrets == {"Key": "s3cret"}
    assert service.input[0].path == "images/in"


def test_the_same_key_twice_with_different_values_is_refused() -> None:
    assert "given twice" in problem(definition(Memory="1Gi", memory="2Gi"))


def test_go_zero_values_mean_defaults() -> None:
    """oscar-cli (Go) sends every field, unset ones as "", null, 0 or false."""
    service = parse_service(
        definition(
            cpu="",
            memory="",
            log_level="",
            visibility="",
            token="",
            input=None,
            output=[{"storage_provider": "", "path": "grayify/out", "prefix": None}],
            environment={"variables": None, "secrets": None},
            labels=None,
            storage_providers=None,
            alpine=False,
            expose={"min_scale": 0, "max_scale": 0},
        )
    )
    assert service.cpu == "0.2" and service.memory == "256Mi"
    assert service.output[0].storage_provider == DEFAULT_PROVIDER
    assert service.output[0].prefix == []


def test_oscar_settings_we_do_not_honour_are_kept_returned_and_warned_of() -> None:
    first = parse_service(definition(enable_sgx=True, total_cpu="", vo=""))
    assert first.to_json()["enable_sgx"] is True
    assert first.oscar_settings == {"enable_sgx": True, "total_cpu": "", "vo": ""}
    assert len(first.warnings) == 1
    assert first.warnings[0].startswith("enable_sgx: not supported by oscar-py")
    # Zero values (what Go clients send for everything) are not worth a warning.
    assert not any("total_cpu" in line or "vo" in line for line in first.warnings)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("kserve", {"type": "inference", "storage_uri": "hf://m"}),
        ("interlink_node_name", "vega-new-vk"),
        ("federation", {"topology": "star", "members": [{"cluster_id": "c2"}]}),
        ("enable_sgx", True),
        ("volume", {"size": "1Gi", "mount_path": "/data"}),
        ("total_cpu", "2"),
    ],
)
def test_a_setting_oscar_py_cannot_honour_is_accepted_with_a_warning(key: str, value: Any) -> None:
    service = parse_service(definition(**{key: value}))
    assert service.oscar_settings[key] == value  # kept and returned
    assert [line.split(":", 1)[0] for line in service.warnings] == [key]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("expose", {"min_scale": 1, "max_scale": 10, "cpu_threshold": 80, "api_port": []}),
        ("federation", {"topology": "none", "group_id": "g"}),
        ("isolation_level", "SERVICE"),
        ("mount", {"storage_provider": "", "path": ""}),
        ("cluster_id", "oscar-cluster"),
        ("alpine", True),
    ],
)
def test_a_setting_that_asks_for_nothing_gets_no_warning(key: str, value: Any) -> None:
    assert parse_service(definition(**{key: value})).warnings == []


def test_unknown_keys_are_dropped_as_oscar_drops_them_and_named_in_warnings() -> None:
    service = parse_service(
        definition(memroy="1Gi", input=[{"path": "a-bucket/in", "sufix": [".jpg"]}])
    )
    assert service.warnings == [
        "memroy: unknown key, ignored",
        "input[0].sufix: unknown key, ignored",
    ]
    assert "memroy" not in service.to_json() and service.memory == "256Mi"
    assert "sufix" not in service.to_json()["input"][0]


def test_log_level_notset_is_valid() -> None:
    assert parse_service(definition(log_level="notset")).log_level == "NOTSET"


def test_what_only_oscars_answers_carry_is_dropped_silently() -> None:
    exported = definition(
        namespace="oscar-svc",
        volume_status={"enabled": False},
        deployment={"state": "ready", "active_instances": 1},
        storage_providers={"minio": {"default": OSCAR_MINIO_DEFAULT}},
        input=[{"path": "images/in"}],
    )
    service = parse_service(exported)
    assert service.warnings == []
    data = service.to_json()
    assert not {"namespace", "volume_status", "deployment"} & set(data)
    # OSCAR's placeholder for its own MinIO is the embedded store here.
    assert service.storage_providers.minio == {}
    assert service.embedded_paths() == service.input


@pytest.mark.parametrize(
    ("given", "bucket", "folder"),
    [
        ("images/in", "images", "in"),
        ("  /images/in/deep/ ", "images", "in/deep"),
        ("images//in", "images", "in"),
        ("images/", "images", ""),  # a bucket's root
        (" /images// ", "images", ""),
        ("in", "grayify", "in"),  # without a bucket: the service's own bucket
    ],
)
def test_paths_are_normalised(given: str, bucket: str, folder: str) -> None:
    path = parse_service(definition(input=[{"path": given}])).input[0]
    assert (path.bucket, path.folder) == (bucket, folder)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("", "path is empty"), (" / ", "path is empty"), ("images/../etc", "'..'")],
)
def test_bad_paths_are_refused(given: str, expected: str) -> None:
    message = problem(definition(output=[{"path": given}]))
    assert message.startswith("output[0].path:") and expected in message


def test_bucket_names_follow_s3_rules() -> None:
    assert "not a valid bucket name" in problem(definition(input=[{"path": "Images/in"}]))
    assert "not a valid bucket name" in problem(definition(input=[{"path": "ab/in"}]))


def test_provider_names_are_normalised_and_must_be_defined() -> None:
    path = StoragePath(storage_provider="MinIO", path="images/in")
    assert path.storage_provider == "minio.default"
    message = problem(definition(output=[{"storage_provider": "s3.aws", "path": "b-1/out"}]))
    assert message == "output[0].storage_provider: 's3.aws' is not defined in storage_providers"
    assert "type one of" in problem(definition(output=[{"storage_provider": "ftp.x", "path": "a"}]))
    service = parse_service(
        definition(
            output=[{"storage_provider": "s3.aws", "path": "results/out"}],
            storage_providers={"S3": {"aws": {"access_key": "AK", "secret_key": "SK"}}},
        )
    )
    assert service.output[0].provider_type == "s3" and service.output[0].provider_id == "aws"
    assert service.storage_providers.s3["aws"].region == "us-east-1"


@pytest.mark.parametrize(
    ("kind", "named", "settings"),
    [
        ("onedata", "Onedata", {"oneprovider_host": "h", "token": "t", "space": "s"}),
        ("rucio", "Rucio", {"host": "h", "account": "a", "rse": "r", "refresh_token": "t"}),
        ("onedata", "Onedata", None),  # not even defined: still named as unsupported
    ],
)
@pytest.mark.parametrize("field", ["input", "output"])
def test_a_path_on_an_unsupported_provider_is_refused_naming_it(
    kind: str, named: str, settings: dict[str, str] | None, field: str
) -> None:
    data = definition(
        **{field: [{"storage_provider": f"{kind}.x", "path": "data/in"}]},
        storage_providers={kind: {"x": settings}} if settings else {},
    )
    message = problem(data)
    assert message.startswith(f"{field}[0].storage_provider:")
    assert f"{named} storage is not supported by oscar-py; use a minio, s3 or webdav" in message


def test_a_provider_of_an_unknown_type_is_refused_listing_the_types() -> None:
    message = problem(definition(input=[{"storage_provider": "ftp.x", "path": "data/in"}]))
    assert message.startswith("input[0].storage_provider:")
    assert "'ftp.x' is not <type>.<id> with type one of minio, s3, webdav" in message


def test_a_webdav_path_is_accepted_and_its_top_folder_may_be_any_name() -> None:
    service = parse_service(
        definition(
            input=[{"storage_provider": "webdav.dcache", "path": "Users/Me_1/in"}],
            output=[{"storage_provider": "webdav.dcache", "path": "Users/Me_1/out"}],
            storage_providers={
                "webdav": {"dcache": {"hostname": "h", "login": "l", "password": "pw-123"}}
            },
        )
    )
    assert service.input[0].bucket == "Users" and service.input[0].folder == "Me_1/in"
    assert service.warnings == []
    assert "pw-123" in service.secret_values()


def test_an_unsupported_provider_defined_but_unused_is_kept_with_a_warning() -> None:
    service = parse_service(
        definition(storage_providers={"rucio": {"r": {"host": "h", "refresh_token": "rt-1"}}})
    )
    assert service.warnings == [
        "storage_providers.rucio: Rucio storage is not supported by oscar-py; its credentials "
        "are kept but no input or output can use them"
    ]
    assert service.secret_values() == ["rt-1"]
    assert service.redacted().storage_providers.rucio["r"]["refresh_token"] == "hidden"


def test_an_output_inside_an_input_is_a_loop_and_refused() -> None:
    message = problem(definition(input=[{"path": "images/in"}], output=[{"path": "images/in/x"}]))
    assert message.startswith("output[0].path:") and "trigger the service again" in message
    bucket_root = definition(input=[{"path": "images/"}], output=[{"path": "images/o"}])
    assert "trigger" in problem(bucket_root)
    # Siblings, another bucket or another provider are fine.
    parse_service(definition(input=[{"path": "images/in"}], output=[{"path": "images/input2"}]))
    parse_service(
        definition(
            input=[{"path": "images/in"}],
            output=[{"path": "images/in", "storage_provider": "minio.other"}],
            storage_providers={"minio": {"other": {"endpoint": "http://x"}}},
        )
    )


def test_prefix_and_suffix_filters() -> None:
    path = StoragePath(path="b-1/out", prefix=["gray_", "bw_"], suffix=[".png"])
    assert path.matches("gray_cat.png") and path.matches("/bw_dog.png")
    assert not path.matches("cat.png") and not path.matches("gray_cat.jpg")
    assert StoragePath(path="b-1/out").matches("anything")
    assert StoragePath(path="b-1/out", suffix=".txt").suffix == [".txt"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.2", Decimal("0.2")),
        ("500m", Decimal("0.5")),
        ("1", Decimal(1)),
        ("256Mi", Decimal(256 * 2**20)),
        ("1G", Decimal(10**9)),
        ("1.5e3", Decimal(1500)),
        ("2E", Decimal(2 * 10**18)),
    ],
)
def test_quantities(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_cpu_and_memory_accept_numbers_and_refuse_nonsense() -> None:
    service = parse_service(definition(cpu=1.5, memory="1e9"))
    assert service.cpu == "1.5" and service.memory_bytes == 10**9
    assert parse_service(definition(cpu="250m")).cpu_cores == pytest.approx(0.25)
    assert problem(definition(cpu="0")).startswith("cpu: cpu '0' must be more than 0")
    assert "is not a quantity" in problem(definition(cpu="two"))
    assert "did you mean Mi" in problem(definition(memory="256m"))


def test_names_must_be_dns_labels() -> None:
    assert problem(definition(name="My_Service")).startswith("name: 'My_Service' is not a valid")
    assert "at most 39" in problem(definition(name="a" * 40))
    assert problem({"image": "i", "script": "s"}) == "name: is required"
    assert "not a valid service name" in problem(definition(name="grayify\n"))
    assert "not a valid bucket name" in problem(definition(input=[{"path": "ima\nges/in"}]))


def test_required_text_must_not_be_blank_and_enums_are_checked() -> None:
    assert problem(definition(script="  \n")).startswith("script: must not be blank")
    assert problem(definition(log_level="loud")).startswith("log_level: log level 'loud'")
    assert parse_service(definition(log_level="debug")).log_level == "DEBUG"
    assert problem(definition(visibility="secret")).startswith("visibility:")
    assert problem(definition(retries=-1)).startswith("retries:")
    assert problem(definition(max_concurrency=0)).startswith("max_concurrency:")


def test_yaml_scalars_in_maps_become_text() -> None:
    service = parse_service(definition(environment={"variables": {"DEBUG": True, "PORT": 8080}}))
    assert service.environment.variables == {"DEBUG": "true", "PORT": "8080"}


def test_redacted_copy_hides_secrets_and_a_put_of_it_keeps_them() -> None:
    stored = parse_service(
        definition(
            token="t" * 64,
            environment={"secrets": {"API_KEY": "k-123456"}},
            storage_providers={
                "minio": {"ext": {"endpoint": "http://m", "access_key": "a", "secret_key": "sk-1"}},
                "webdav": {"dav": {"hostname": "h", "login": "l", "password": "pw-1"}},
            },
        )
    )
    shown = stored.redacted()
    assert shown.environment.secrets == {"API_KEY": ""}
    assert shown.storage_providers.minio["ext"].secret_key == "hidden"
    assert shown.storage_providers.webdav["dav"].password == "hidden"
    assert shown.token == stored.token
    assert stored.environment.secrets == {"API_KEY": "k-123456"}  # the original is untouched
    assert "k-123456" not in str(shown.to_json()) and "sk-1" not in str(shown.to_json())

    sent_back = parse_service(shown.to_json())
    kept = sent_back.with_secrets_from(stored)
    assert kept.environment.secrets == {"API_KEY": "k-123456"}
    assert kept.storage_providers.minio["ext"].secret_key == "sk-1"
    assert kept.storage_providers.webdav["dav"].password == "pw-1"
    changed = parse_service(
        definition(environment={"secrets": {"API_KEY": "new"}})
    ).with_secrets_from(stored)
    assert changed.environment.secrets == {"API_KEY": "new"}
    assert set(stored.secret_values()) == {"t" * 64, "k-123456", "sk-1", "pw-1"}


def test_round_trip_through_json_is_stable() -> None:
    service = parse_service(
        definition(input=[{"path": "in"}], alpine=True, storage_providers={"onedata": {"x": {}}})
    )
    again = Service.model_validate(service.to_json())
    assert again == service and again.to_json() == service.to_json()


def test_embedded_paths() -> None:
    service = parse_service(
        definition(
            input=[{"path": "images/in"}],
            output=[
                {"path": "images/out"},
                {"storage_provider": "s3.aws", "path": "results/out"},
            ],
            storage_providers={"s3": {"aws": {}}},
        )
    )
    assert [path.path for path in service.embedded_paths()] == ["images/in", "images/out"]
    overridden = parse_service(
        definition(
            input=[{"path": "images/in"}],
            storage_providers={"minio": {"default": {"endpoint": "http://minio:9000"}}},
        )
    )
    assert overridden.embedded_paths() == []


def test_placement_constraints_are_checked_and_enable_gpu_asks_for_gpu_nodes() -> None:
    placed = parse_service(definition(placement=["node.labels.zone == b", "node.role!=manager"]))
    gpu = parse_service(definition(enable_gpu=True, placement=["node.labels.zone==b"]))

    assert placed.node_constraints() == ["node.labels.zone == b", "node.role!=manager"]
    assert gpu.node_constraints() == ["node.labels.zone==b", "node.labels.gpu==true"]
    assert parse_service(definition(enable_gpu=False)).node_constraints() == []
    assert "not a placement constraint" in problem(definition(placement=["zone=b"]))
    assert "not a placement constraint" in problem(definition(placement=["node.labels.a==b; x"]))
