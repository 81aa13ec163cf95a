"""Exit codes of the `oscar` command, named so that scripts and tests can rely on them."""

EXIT_OK = 0
EXIT_FAILURE = 1
"""The server refused or failed the request for a reason not listed below."""
EXIT_USAGE = 2
"""Bad arguments or input files (also Click's own usage errors)."""
EXIT_STARTUP = 3
"""`oscar serve` could not start."""
EXIT_CONFIG = 4
"""No usable cluster: config file missing, unreadable or without the requested cluster."""
EXIT_UNREACHABLE = 5
"""The cluster's endpoint did not answer (connection refused, DNS, TLS, timeout)."""
EXIT_UNAUTHORIZED = 6
"""The cluster rejected the credentials (401/403)."""
EXIT_NOT_FOUND = 7
"""The service, job or file does not exist."""
EXIT_JOBS_FAILED = 8
"""`service wait` saw at least one failed job."""
EXIT_INTERRUPTED = 130
