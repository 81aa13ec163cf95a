"""The `oscar` command."""
