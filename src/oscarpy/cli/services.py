"""`oscar service …`: list, inspect, delete, invoke and wait for services."""

from __future__ import annotations

import base64
import binascii
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from oscarpy.cli.context import CLUSTER_OPTION, ENDPOINT_OPTION, aliases, connect
from oscarpy.cli.errors import CliError, JobsFailed, NotFound, RequestFailed, UsageError
from oscarpy.cli.output import (
    OUTPUT_OPTION,
    OutputFormat,
    print_data,
    print_json,
    print_records,
    print_yaml,
    success,
)

if TYPE_CHECKING:
    from oscarpy.cli.client import JobInfo, OscarClient

service_app = typer.Typer(
    name="service",
    help="Manage, invoke and watch services.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@service_app.command("list")
def list_services(
    cluster: str | None = CLUSTER_OPTION, output: OutputFormat = OUTPUT_OPTION
) -> None:
    """List the services of the cluster."""
    with connect(cluster) as client:
        services = client.list_services()
    if print_data(services, output):
        return
    records = [
        {
            "name": service.get("name"),
            "image": service.get("image"),
            "cpu": service.get("cpu"),
            "memory": service.get("memory"),
            "inputs": _paths(service.get("input")),
            "outputs": _paths(service.get("output")),
        }
        for service in sorted(services, key=lambda item: str(item.get("name")))
    ]
    print_records(
        records,
        [
            ("name", "NAME"),
            ("image", "IMAGE"),
            ("cpu", "CPU"),
            ("memory", "MEMORY"),
            ("inputs", "INPUT"),
            ("outputs", "OUTPUT"),
        ],
        output,
        empty="no services: create one with `oscar apply FDL`",
    )


def _paths(storage: object) -> str:
    if not isinstance(storage, list):
        return ""
    return ", ".join(str(item.get("path")) for item in storage if isinstance(item, dict))


@service_app.command("get")
def get(
    name: str = typer.Argument(..., metavar="NAME"),
    cluster: str | None = CLUSTER_OPTION,
    output: OutputFormat = typer.Option(
        OutputFormat.yaml, "--output", "-o", help="yaml (default) or json."
    ),
) -> None:
    """Print a service's definition as the cluster holds it."""
    with connect(cluster) as client:
        service = client.get_service(name)
    if output is OutputFormat.json:
        print_json(service)
    else:
        print_yaml(service)


@service_app.command("delete")
def delete(
    names: list[str] = typer.Argument(..., metavar="NAME..."),
    cluster: str | None = CLUSTER_OPTION,
) -> None:
    """Delete services (their buckets and files are kept)."""
    failures: list[CliError] = []
    with connect(cluster) as client:
        for name in names:
            try:
                client.delete_service(name)
            except (NotFound, RequestFailed) as error:
                failures.append(error)
                continue
            success(f"service {name!r} deleted")
    if failures:
        if len(failures) == 1:
            raise failures[0]
        raise type(failures[0])("; ".join(error.message for error in failures))


def _read_input(text: str | None, file: Path | None) -> bytes:
    if (text is None) == (file is None):
        raise UsageError("give exactly one of -i TEXT or -f FILE")
    if file is not None:
        try:
            return file.read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read {file}: {error.strerror}") from error
    return (text or "").encode()


INPUT_TEXT_OPTION = typer.Option(None, "--text-input", "-i", help="Send this text.")
INPUT_FILE_OPTION = typer.Option(None, "--file-input", "-f", help="Send this file.")
TOKEN_OPTION = typer.Option(
    None, "--token", "-t", help="Service token (default: read from the service definition)."
)


def _endpoint_needs_token(endpoint: str | None, token: str | None) -> None:
    """As oscar-cli: a cluster that is not configured is reached with the service's token."""
    if endpoint is not None and token is None:
        raise UsageError("-e ENDPOINT needs the service's token: add -t TOKEN")


@service_app.command("run")
def run(
    name: str = typer.Argument(..., metavar="NAME"),
    text: str | None = INPUT_TEXT_OPTION,
    file: Path | None = INPUT_FILE_OPTION,
    output_file: Path | None = typer.Option(
        None, "--output", "-o", help="Write the result to this file instead of stdout."
    ),
    token: str | None = TOKEN_OPTION,
    cluster: str | None = CLUSTER_OPTION,
    endpoint: str | None = ENDPOINT_OPTION,
) -> None:
    """Invoke a service synchronously and print (or save) its result.

    The input is sent base64-encoded and a base64 answer is decoded, as oscar-cli does.
    """
    _endpoint_needs_token(endpoint, token)
    body = base64.b64encode(_read_input(text, file))
    with connect(cluster, endpoint) as client:
        answer = client.run(name, body, token)
    result = _decode_result(answer)
    if output_file is not None:
        try:
            output_file.write_bytes(result)
        except OSError as error:
            raise UsageError(f"cannot write {output_file}: {error.strerror}") from error
        success(f"result written to {output_file}")
        return
    sys.stdout.buffer.write(result)
    sys.stdout.buffer.flush()


def _decode_result(answer: bytes) -> bytes:
    """A base64 answer (output files) is decoded; plain text (script output) is kept."""
    stripped = answer.strip()
    if not stripped:
        return answer
    try:
        return base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        return answer


@service_app.command("job")
def job(
    name: str = typer.Argument(..., metavar="NAME"),
    text: str | None = INPUT_TEXT_OPTION,
    file: Path | None = INPUT_FILE_OPTION,
    token: str | None = TOKEN_OPTION,
    cluster: str | None = CLUSTER_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    endpoint: str | None = ENDPOINT_OPTION,
) -> None:
    """Invoke a service asynchronously and print the id of the job it created."""
    _endpoint_needs_token(endpoint, token)
    body = base64.b64encode(_read_input(text, file))
    with connect(cluster, endpoint) as client:
        response = client.job(name, body, token)
    try:
        data: Any = response.json()
    except ValueError:
        data = None
    job_id = _job_id(data, response.headers)
    if print_data(data if isinstance(data, dict) else {"job_id": job_id}, output):
        return
    if job_id:
        typer.echo(job_id)
    else:
        success(f"job created for {name!r} (the server returned no job id)")


def _job_id(data: object, headers: Any) -> str | None:
    if isinstance(data, dict):
        for key in ("job_id", "jobID", "job_name", "jobName", "id", "name"):
            if data.get(key):
                return str(data[key])
    for header in ("x-job-id", "x-oscar-job-id"):
        if headers.get(header):
            return str(headers[header])
    return None


@service_app.command("reconcile")
def reconcile(
    name: str = typer.Argument(..., metavar="NAME"),
    cluster: str | None = CLUSTER_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create a job for every file in the service's input path that has none yet."""
    with connect(cluster) as client:
        result = client.reconcile(name)
    if print_data(result, output):
        return
    summary = ", ".join(f"{key}: {value}" for key, value in result.items())
    success(f"service {name!r} reconciled" + (f" ({summary})" if summary else ""))


COUNTED_STATES = ("pending", "running", "succeeded", "failed")


def count_states(jobs: list[JobInfo]) -> dict[str, int]:
    counts = dict.fromkeys(COUNTED_STATES, 0)
    for info in jobs:
        state = info.state
        if state in ("cancelled", "canceled"):
            state = "failed"
        counts[state if state in counts else "pending"] += 1
    return counts


def _summary(counts: dict[str, int]) -> str:
    return "  ".join(f"{state} {counts[state]}" for state in COUNTED_STATES)


@service_app.command("wait")
def wait(
    name: str = typer.Argument(..., metavar="NAME"),
    timeout: float | None = typer.Option(
        None, "--timeout", min=0, help="Give up after this many seconds (exit 1)."
    ),
    interval: float = typer.Option(0.5, "--interval", min=0.05, help="Seconds between polls."),
    expect: int = typer.Option(
        0, "--expect", min=0, help="Also wait until the service has at least this many jobs."
    ),
    cluster: str | None = CLUSTER_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Wait until no job of the service is pending or running; exit 8 if any failed.

    Run it after uploading a batch: it shows a live count of pending, running, succeeded
    and failed jobs. A job counts until it is deleted (`oscar service logs delete`).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    with connect(cluster) as client:
        counts = _wait_until_idle(client, name, interval, expect, deadline)
    if not print_data(counts, output):
        success(_summary(counts))
    if counts["failed"]:
        raise JobsFailed(
            f"{counts['failed']} job(s) of {name!r} failed: see `oscar service logs list "
            f"{name} -s failed`"
        )


def _wait_until_idle(
    client: OscarClient, name: str, interval: float, expect: int, deadline: float | None
) -> dict[str, int]:
    """Poll until idle twice in a row: a file uploaded just before may not have a job yet."""
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    idle_polls = 0
    with Live("", console=console, transient=True, auto_refresh=False) as live:
        while True:
            counts = count_states(client.list_jobs(name))
            live.update(f"{name}: {_summary(counts)}", refresh=True)
            busy = counts["pending"] + counts["running"]
            total = sum(counts.values())
            idle_polls = idle_polls + 1 if busy == 0 and total >= expect else 0
            if idle_polls >= 2:
                return counts
            if deadline is not None and time.monotonic() >= deadline:
                raise CliError(
                    f"timed out waiting for {name!r}: {_summary(counts)}"
                    + (f" (expected {expect} jobs)" if total < expect else "")
                )
            time.sleep(interval)


# oscar-cli's other names for these commands.
aliases(service_app, list_services, "ls")
aliases(service_app, get, "g")
aliases(service_app, delete, "d", "del", "remove", "rm")
aliases(service_app, run, "invoke", "r")
aliases(service_app, job, "j")
