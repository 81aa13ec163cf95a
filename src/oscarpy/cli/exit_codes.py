"""Exit codes of the `oscar` command, named so that scripts and tests can rely on them."""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_STARTUP = 3
EXIT_INTERRUPTED = 130
