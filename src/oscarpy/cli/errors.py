"""The errors the `oscar` client reports: one line for the user and a named exit code.

    CliError
    ├── UsageError          bad arguments or input files
    ├── ConfigError         no usable cluster configuration
    ├── ConnectionFailed    the endpoint did not answer
    ├── Unauthorized        the credentials were rejected
    ├── NotFound            service, job or file missing
    └── RequestFailed       any other refusal by the server (carries its status code)

`main()` prints `error: <message>` and exits with `exit_code`; the traceback is shown only
with `--debug`.
"""

from __future__ import annotations

from oscarpy.cli import exit_codes


class CliError(Exception):
    exit_code = exit_codes.EXIT_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(CliError):
    exit_code = exit_codes.EXIT_USAGE


class ConfigError(CliError):
    exit_code = exit_codes.EXIT_CONFIG


class ConnectionFailed(CliError):
    exit_code = exit_codes.EXIT_UNREACHABLE


class Unauthorized(CliError):
    exit_code = exit_codes.EXIT_UNAUTHORIZED


class NotFound(CliError):
    exit_code = exit_codes.EXIT_NOT_FOUND


class RequestFailed(CliError):
    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class JobsFailed(CliError):
    exit_code = exit_codes.EXIT_JOBS_FAILED
