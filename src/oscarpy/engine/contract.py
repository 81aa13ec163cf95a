"""The job contract: what a script sees, the same for a file job and for `/run`.

One module owns it so that a script behaves the same however it is invoked:

- the work directory's layout (`script.sh`, `event.json`, `input/`, `output/`, `tmp/`),
  built by `build_work_dir` with calls that never follow a link;
- the environment (`environment`): OSCAR's variables, the service's variables and secrets;
- how a request body becomes the script's input (`decode_body_file`) and the `EVENT` text
  (`event_text`, capped at `MAX_EVENT_TEXT`);
- which outputs are taken (`outputs.collect_outputs`, links never followed) and how a run's
  result becomes the attempt's outcome (`outcome_of`);
- what one job of a service may use and the `JobSpec` it runs with (`limits`, `job_spec`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path, PurePosixPath

from oscarpy.config import Settings
from oscarpy.engine.events import event_time
from oscarpy.engine.ledger import JobView
from oscarpy.engine.limits import disk_usage
from oscarpy.engine.outcomes import AttemptOutcome, OutcomeKind
from oscarpy.engine.runtimes.base import EndReason, ImagePull, Limits, RunResult
from oscarpy.engine.safefs import (
    Note,
    copy_tree,
    make_dir_at,
    open_beneath,
    open_dir,
    put_file_at,
    write_new_at,
)
from oscarpy.engine.spec import JobSpec, StorageTarget, StoredInput
from oscarpy.gpu import host_has_gpu
from oscarpy.services.isolation import outputs_for
from oscarpy.services.model import DEFAULT_PROVIDER, Service

SCRIPT_FILE = "script.sh"
EVENT_FILE = "event.json"
INPUT_DIR = "input"
OUTPUT_DIR = "output"
TMP_DIR = "tmp"
MOUNT_DIR = "mnt"
"""OSCAR's `mount`, copied in before the script starts: `/mnt` in the container, read-only."""
BODY_FILE = "event_file"
"""The input file's name for a request body (`/run`, non-storage `/job`), as in OSCAR."""
MAX_EVENT_TEXT = 128 * 1024 - len("EVENT=") - 1
"""The most `EVENT` can hold: Linux refuses to start a program with a longer variable
(MAX_ARG_STRLEN, 128 KiB with its name). Larger events and bodies reach the script only as
files: `EVENT_FILE_PATH` (the body as decoded, for a `/job` or `/run` body) and the input."""
READABLE = 0o644
"""What the platform stages: readable by the script whatever user the image runs as."""
WRITABLE = 0o1777
"""`output/` and `tmp/`: writable by the script whatever user it runs as."""
SCRIPT_USER = "65534:65534"
"""Who scripts run as unless their service sets `run_as_root` (`nobody` in most images; a
numeric id needs no entry in the image's /etc/passwd)."""


def input_file_name(key: str) -> str:
    """The staged file's name: the key's last segment, or `input` if that is not a name."""
    name = PurePosixPath(key).name
    if key.endswith("/") or name in ("", ".", "..") or "\x00" in name:
        return "input"
    encoded = name.encode()
    if len(encoded) > 200:  # keep within NAME_MAX, keeping the extension
        suffix = PurePosixPath(name).suffix[-20:]
        name = encoded[: 200 - len(suffix.encode())].decode(errors="ignore") + suffix
    return name


def input_name(spec: JobSpec) -> str:
    """The input file's name under `input/`."""
    return input_file_name(spec.input.key) if spec.input is not None else BODY_FILE


# -- bodies and events ----------------------------------------------------------------------


def decode_body_file(raw: Path, destination: Path) -> None:
    """OSCAR's rule for a `/job` invocation, on files (a body may be larger than memory): JSON
    is kept as it is, anything else is base64 (decoded; a body that is not valid base64 is
    kept as it is rather than refused). `raw` is moved or left for the caller to remove.

    `/run` applies the same rule, refusing invalid base64 (`run.body.stage_body`)."""
    # Imported here: the run package imports this module.
    from oscarpy.engine.run.body import decode_base64_file, is_json
    from oscarpy.engine.run.errors import InvalidBody

    if not is_json(raw):
        try:
            decode_base64_file(raw, destination)
            return
        except InvalidBody:
            destination.unlink(missing_ok=True)
    os.replace(raw, destination)


def event_text(content: bytes) -> str:
    """A body as the `EVENT` text: small UTF-8 text only (binary reaches the script as a file;
    NUL can be neither in the environment nor in a PostgreSQL text column)."""
    if len(content) > MAX_EVENT_TEXT or b"\x00" in content:
        return ""
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return ""


def event_text_of_file(path: Path) -> str:
    """`event_text` of a staged body file, reading no more than the cap allows."""
    with path.open("rb") as handle:
        return event_text(handle.read(MAX_EVENT_TEXT + 1))


# -- the work directory ---------------------------------------------------------------------


def build_work_dir(
    work_dir: Path, spec: JobSpec, body: Path | None = None, *, link_body: bool = False
) -> Path:
    """Create `work_dir` (which must not exist) with the script, the event, the empty
    `output/` and `tmp/`, and `input/` holding a copy of `body` if given (a hard link to it
    with `link_body`, where the filesystem allows); returns the input file's path, for the
    caller to download a stored input to.

    Every name is created exclusively and never through a link (`O_EXCL|O_NOFOLLOW`, modes set
    on descriptors), so that a directory someone else can write into cannot redirect a write.
    """
    os.mkdir(work_dir, 0o700)
    root = open_dir(work_dir)
    try:
        write_new_at(root, SCRIPT_FILE, spec.script.encode(), READABLE)
        if spec.event or body is None:
            write_new_at(root, EVENT_FILE, spec.event.encode(), READABLE)
        else:  # a body too large (or not text) for `EVENT`: the file is the body itself
            put_file_at(root, EVENT_FILE, body, READABLE, link=link_body)
        for writable in (OUTPUT_DIR, TMP_DIR):
            os.close(make_dir_at(root, writable, WRITABLE))
        input_dir = make_dir_at(root, INPUT_DIR, 0o755)
        try:
            if body is not None:
                put_file_at(input_dir, BODY_FILE, body, READABLE, link=link_body)
        finally:
            os.close(input_dir)
        os.fchmod(root, 0o755)
    finally:
        os.close(root)
    return work_dir / INPUT_DIR / input_name(spec)


def staged_bytes(work_dir: Path) -> int:
    """What the platform put in the work directory (script, event, input): the disk limit
    counts only what the script adds."""
    return disk_usage(
        [work_dir / SCRIPT_FILE, work_dir / EVENT_FILE, work_dir / INPUT_DIR, work_dir / MOUNT_DIR]
    )


def environment(spec: JobSpec, mount: PurePosixPath) -> dict[str, str]:
    """The contract's variables for a script that sees its work directory at `mount`."""
    variables = dict(spec.environment)
    variables.update(
        {
            "INPUT_FILE_PATH": str(mount / INPUT_DIR / input_name(spec)),
            "TMP_INPUT_DIR": str(mount / INPUT_DIR),
            "TMP_OUTPUT_DIR": str(mount / OUTPUT_DIR),
            "EVENT_FILE_PATH": str(mount / EVENT_FILE),
            # Temporary files land in the work directory: watched for the disk limit, and
            # deleted with it.
            "TMPDIR": str(mount / TMP_DIR),
            "JOB_UUID": spec.job_id,
            "OSCAR_SERVICE_NAME": spec.service,
            "OSCAR_SERVICE_TOKEN": spec.token,
            "OSCAR_SERVICE_BASE_PATH": spec.base_path,
            # OSCAR sets the Kubernetes node's name: here, the host that runs the job.
            "RESOURCE_ID": socket.gethostname(),
        }
    )
    if spec.input is not None and not spec.stage_in:
        del variables["INPUT_FILE_PATH"]  # nothing was downloaded, as in OSCAR
    if len(spec.event.encode()) <= MAX_EVENT_TEXT and "\x00" not in spec.event:
        variables["EVENT"] = spec.event
    if spec.input is not None:
        variables["STORAGE_OBJECT_KEY"] = spec.input.key
        variables["EVENT_TIME"] = spec.event_time
    return variables


def mounted_file(work_dir: Path, bucket: str, key: str) -> Path | None:
    """Where the object `key` of a mounted bucket goes under `mnt/`, or `None` for a key that
    is no file path (`..`, empty parts, a folder marker): keys are data, never paths."""
    parts = key.split("/")
    if not parts[-1] or any(part in ("", ".", "..") or "\x00" in part for part in parts):
        return None
    return work_dir.joinpath(MOUNT_DIR, bucket, *parts)


# -- outcomes -------------------------------------------------------------------------------


def outcome_of(result: RunResult, took: str = "") -> AttemptOutcome:
    """How a run's result ends the attempt: success (`took` says what was done with the
    outputs), the script's failure, or the platform's when the kernel killed it for memory."""
    if result.succeeded:
        return AttemptOutcome.success(f"{result.message}; {took}" if took else result.message)
    if result.reason is EndReason.OOM:
        return AttemptOutcome(
            OutcomeKind.INFRASTRUCTURE_FAILED, result.message, "oom", result.exit_code
        )
    reason = result.reason.value if result.reason else "exit"
    return AttemptOutcome(OutcomeKind.SCRIPT_FAILED, result.message, reason, result.exit_code)


# -- from a service and a job row -----------------------------------------------------------


def script_user(service: Service) -> str | None:
    """The user the service's scripts run as; `None` keeps the image's own (`run_as_root`)."""
    return None if service.run_as_root else SCRIPT_USER


def _mount(service: Service) -> StorageTarget | None:
    path = service.mount_path()
    if path is None:
        return None
    return StorageTarget(path.storage_provider, path.bucket, path.folder)


def image_pull(service: Service) -> ImagePull:
    """How the service's image is got: its pull policy and registry login."""
    username, password = service.registry_login() or ("", "")
    return ImagePull(service.image_pull_policy, username, password)


def limits(service: Service, settings: Settings) -> Limits:
    """What one job of `service` may use: its own cpu and memory, the platform's disk and
    log flood limits."""
    return Limits(
        cpu_cores=service.cpu_cores,
        memory_bytes=service.memory_bytes,
        disk_bytes=settings.job_disk_limit,
        output_bytes=settings.job_log_flood_limit,
        gpu=service.enable_gpu and host_has_gpu(),
    )


def job_spec(service: Service, job: JobView, attempt: int, settings: Settings) -> JobSpec:
    """The plain `JobSpec` one attempt of `job` runs with."""
    stored = None
    if job.bucket is not None and job.key is not None:
        stored = StoredInput(job.provider or DEFAULT_PROVIDER, job.bucket, job.key)
    variables = dict(service.environment.variables)
    variables.update(service.script_secrets())
    return JobSpec(
        job_id=job.id,
        attempt=attempt,
        service=service.name,
        image=service.image,
        script=service.script,
        event=job.event,
        input=stored,
        body_path=Path(job.body_path) if job.body_path else None,
        event_time=event_time(job.created_at),
        environment=variables,
        token=service.token,
        limits=limits(service, settings),
        timeout=service.timeout,
        stage_in=not service.file_stage_in,
        base_path=service.exposed_base_path(),
        constraints=tuple(service.node_constraints()),
        pull=image_pull(service),
        mount=_mount(service),
        outputs=tuple(
            StorageTarget(
                path.storage_provider,
                path.bucket,
                path.folder,
                tuple(path.prefix),
                tuple(path.suffix),
            )
            for path in outputs_for(service, stored.bucket if stored else None)
        ),
        user=script_user(service),
        network=service.network,
    )


def collect_outputs(work_dir: Path, destination: Path, note: Note) -> list[str]:
    """Take the script's outputs: the regular files under `work_dir/output`, copied into
    `destination` (out of the container's reach) without following a link anywhere; returns
    their paths relative to `destination`.

    Call it only once nothing of the script runs any more: what is copied is then final."""
    try:
        source = open_beneath(work_dir, OUTPUT_DIR)
    except OSError:
        note("output/ is not a directory any more; nothing to take")
        destination.mkdir(mode=0o700)
        return []
    try:
        return copy_tree(source, destination, note)
    finally:
        os.close(source)
