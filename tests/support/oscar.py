"""Services as OSCAR v4 answers them, written here from its Go types (nothing copied)."""

from __future__ import annotations

from typing import Any

#: The `minio.default` entry OSCAR adds to every service it answers: its own MinIO, keys hidden.
OSCAR_MINIO_DEFAULT = {
    "endpoint": "http://minio.minio:9000",
    "verify": True,
    "access_key": "hidden",
    "secret_key": "hidden",
    "region": "us-east-1",
}


def oscar_export(service: dict[str, Any]) -> dict[str, Any]:
    """`service` as OSCAR v4's GET answers it: every field of its Go type, zero values for those
    not given, the labels it adds, and its own MinIO as a `hidden` `minio.default`."""
    name = service["name"]
    providers = dict(service.get("storage_providers") or {})
    providers["minio"] = {**(providers.get("minio") or {}), "default": OSCAR_MINIO_DEFAULT}
    return {
        "cluster_id": "oscar-cluster",
        "memory": "256Mi",
        "cpu": "0.2",
        "total_memory": "",
        "total_cpu": "",
        "ephemeral_storage_request": "",
        "enable_gpu": False,
        "enable_sgx": False,
        "image_prefetch": False,
        "synchronous": {"min_scale": 0, "max_scale": 0},
        "log_level": "NOTSET",
        "alpine": False,
        "token": "f" * 64,
        "file_stage_in": False,
        "input": None,
        "output": None,
        "expose": {
            "min_scale": 0,
            "max_scale": 0,
            "cpu_threshold": 0,
            "rewrite_target": False,
            "default_command": False,
            "set_auth": False,
            "health_path": "",
        },
        "environment": {"variables": None, "secrets": None},
        "annotations": {},
        "vo": "",
        "owner": "cluster_admin",
        "namespace": "oscar-svc",
        "interlink_node_name": "",
        "visibility": "private",
        "allowed_users": None,
        "isolation_level": "SERVICE",
        "bucket_list": None,
        "mount": {"storage_provider": "", "path": ""},
        "volume_status": {"enabled": False},
        "deployment": {"state": "ready", "active_instances": 0, "affected_instances": 0},
        **service,
        "labels": {
            **(service.get("labels") or {}),
            "oscar_service": name,
            "oscar.grycap/user-service": "true",
            "queue": f"root.oscar-queue.{name}",
        },
        "storage_providers": providers,
    }
