"""`oscar service logs …`: a service's jobs and what their scripts printed."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import typer

from oscarpy.cli.context import CLUSTER_OPTION, aliases, connect
from oscarpy.cli.errors import NotFound, UsageError
from oscarpy.cli.output import OUTPUT_OPTION, OutputFormat, print_records, success

if TYPE_CHECKING:
    from oscarpy.cli.client import JobInfo, OscarClient

logs_app = typer.Typer(
    name="logs",
    help="List jobs, read and delete their logs.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

FOLLOW_INTERVAL = 0.5


def _by_creation(jobs: list[JobInfo]) -> list[JobInfo]:
    return sorted(jobs, key=lambda info: (info.creation_time or "", info.name))


@logs_app.command("list")
def list_jobs(
    name: str = typer.Argument(..., metavar="NAME"),
    status: list[str] | None = typer.Option(
        None,
        "--status",
        "-s",
        help="Only jobs in these states (pending, running, succeeded, failed): "
        "comma-separated (-s Pending,Running) or repeated.",
    ),
    cluster: str | None = CLUSTER_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """List the jobs of a service, oldest first."""
    states = _states(status)
    with connect(cluster) as client:
        jobs = _by_creation(client.list_jobs(name))
    if states:
        jobs = [info for info in jobs if info.state in states]
    records = [info.as_dict() for info in jobs]
    if output is OutputFormat.table:
        for record, info in zip(records, jobs, strict=True):
            if info.state == "succeeded":
                record["reason"] = None  # "script exited with 0" is noise in a table
    print_records(
        records,
        [
            ("name", "JOB"),
            ("status", "STATUS"),
            ("creation_time", "CREATED"),
            ("start_time", "STARTED"),
            ("finish_time", "FINISHED"),
            ("node", "NODE"),
            ("reason", "REASON"),
        ],
        output,
        empty=f"no jobs for {name!r}"
        + (f" in state {', '.join(sorted(states))}" if states else ""),
    )


def _states(given: list[str] | None) -> set[str]:
    """The states of `-s`, as oscar-cli takes them: case-insensitive, comma-separated."""
    states = {part.strip().lower() for item in given or [] for part in item.split(",")}
    states.discard("")
    unknown = states - {"pending", "running", "succeeded", "failed", "cancelled"}
    if unknown:
        raise UsageError(
            f"unknown state(s) {', '.join(sorted(unknown))}: use pending, running, succeeded, "
            "failed"
        )
    return states


def latest_job(client: OscarClient, name: str) -> str:
    jobs = _by_creation(client.list_jobs(name))
    if not jobs:
        raise NotFound(f"service {name!r} has no jobs")
    return jobs[-1].name


@logs_app.command("get")
def get(
    name: str = typer.Argument(..., metavar="NAME"),
    job: str | None = typer.Argument(None, metavar="[JOB]", help="Default: the latest job."),
    latest: bool = typer.Option(False, "--latest", "-l", help="The most recent job."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing until the job finishes."
    ),
    timestamps: bool = typer.Option(
        False, "--timestamps", "-t", help="Prefix each line with its time."
    ),
    cluster: str | None = CLUSTER_OPTION,
) -> None:
    """Print the log of a job (the latest one without JOB)."""
    if job is not None and latest:
        raise UsageError("give JOB or --latest, not both")
    with connect(cluster) as client:
        job_name = job or latest_job(client, name)
        if not follow:
            _write(client.get_log(name, job_name, timestamps=timestamps))
            return
        _follow(client, name, job_name, timestamps)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _follow(client: OscarClient, name: str, job_name: str, timestamps: bool) -> None:
    """Print new log text as it arrives, until the job has finished and its log is read."""
    printed = 0
    while True:
        state = _job_state(client, name, job_name)
        text = client.get_log(name, job_name, timestamps=timestamps)
        if len(text) < printed:  # log replaced (retried attempt): start over
            printed = 0
        _write(text[printed:])
        printed = len(text)
        if state is None or state.finished:
            if state is not None and state.state != "succeeded":
                success(f"job {job_name} {state.state}")
            return
        time.sleep(FOLLOW_INTERVAL)


def _job_state(client: OscarClient, name: str, job_name: str) -> JobInfo | None:
    return next((info for info in client.iter_jobs(name) if info.name == job_name), None)


@logs_app.command("delete")
def delete(
    name: str = typer.Argument(..., metavar="NAME"),
    jobs: list[str] | None = typer.Argument(None, metavar="JOB..."),
    succeeded: bool = typer.Option(False, "--succeeded", "-s", help="Delete every succeeded job."),
    all_jobs: bool = typer.Option(
        False, "--all", "-a", help="Delete every job, also pending, running and failed ones."
    ),
    cluster: str | None = CLUSTER_OPTION,
) -> None:
    """Delete jobs and their logs: the ones named, the succeeded ones, or all."""
    chosen = sum([bool(jobs), succeeded, all_jobs])
    if chosen != 1:
        raise UsageError("give JOB ids, --succeeded or --all (exactly one of them)")
    with connect(cluster) as client:
        if jobs:
            for job_name in jobs:
                client.delete_job(name, job_name)
                success(f"job {job_name} deleted")
            return
        client.delete_jobs(name, include_unfinished=all_jobs)
    success(f"{'all' if all_jobs else 'succeeded'} jobs of {name!r} deleted")


@logs_app.command("retry")
def retry(
    name: str = typer.Argument(..., metavar="NAME"),
    jobs: list[str] = typer.Argument(..., metavar="JOB..."),
    cluster: str | None = CLUSTER_OPTION,
) -> None:
    """Run failed jobs again (an oscar-py extension): each becomes pending."""
    with connect(cluster) as client:
        for job_name in jobs:
            info = client.retry_job(name, job_name)
            success(f"job {job_name} is {info.status.lower()} again")


# oscar-cli's other names for these commands.
aliases(logs_app, list_jobs, "ls")
aliases(logs_app, get, "g")
aliases(logs_app, delete, "d", "del", "remove", "rm")
