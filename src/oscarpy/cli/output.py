"""How commands print results: Rich tables for people, `-o json` for scripts.

Only this module draws tables, so every listing looks alike and `-o json` prints the same
records as plain data.
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Sequence
from typing import Any

import typer


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OUTPUT_OPTION = typer.Option(
    OutputFormat.table, "--output", "-o", help="table for people; json or yaml for scripts."
)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_yaml(data: Any) -> None:
    """YAML with multi-line strings (scripts) as literal blocks, readable and reusable."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _text)
    plain = json.loads(json.dumps(data, default=str))
    sys.stdout.write(yaml.dump(plain, Dumper=_Dumper, sort_keys=False, allow_unicode=True))


def print_data(data: Any, output: OutputFormat) -> bool:
    """Print as JSON or YAML and return True; False means the caller draws a table."""
    if output is OutputFormat.json:
        print_json(data)
        return True
    if output is OutputFormat.yaml:
        print_yaml(data)
        return True
    return False


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[object]], *, title: str | None = None
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        # Piped into grep or awk: one line per row, never wrapped to an imagined width.
        console = Console(width=100_000)
    table = Table(title=title, header_style="bold", box=None, pad_edge=False)
    for column in columns:
        # Fold rather than cut: a job id or path with an ellipsis cannot be pasted back.
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def print_records(
    records: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
    output: OutputFormat,
    *,
    empty: str,
) -> None:
    """Print records as JSON, or as a table with the given (key, heading) columns."""
    if print_data(list(records), output):
        return
    if not records:
        typer.echo(empty, err=True)
        return
    print_table(
        [heading for _, heading in columns],
        [[record.get(key) for key, _ in columns] for record in records],
    )


def print_mapping(data: dict[str, Any], output: OutputFormat) -> None:
    """A single record: JSON, or a two-column key/value table."""
    if print_data(data, output):
        return
    print_table(
        ["field", "value"],
        [[key, _cell(value)] for key, value in data.items()],
    )


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def success(message: str) -> None:
    """A confirmation line on stderr, so that stdout holds only data."""
    typer.echo(message, err=True)


def warn(message: str) -> None:
    """A warning line on stderr: something was accepted but will not do what it says."""
    typer.echo(f"warning: {message}", err=True)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
