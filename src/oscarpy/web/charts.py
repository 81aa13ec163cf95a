"""Geometry of the dashboard's inline SVG charts, drawn by the `_charts.html` macros.

Labels are HTML beside each drawing, so that they stay legible when it stretches.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from oscarpy.db import Database
from oscarpy.engine import activity
from oscarpy.engine.activity import Percentiles, Slot, TimingSlot, Window
from oscarpy.web.dashboard import templates

WIDTH, HEIGHT = 600, 200


def format_seconds(seconds: float) -> str:
    """A wait or run time as a person reads it: 850 ms, 12.3 s, 4 min 5 s, 2 h 3 min."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


templates.env.filters["seconds"] = format_seconds


def time_labels(starts: Sequence[datetime]) -> list[str]:
    """About five evenly spaced slot starts, with the day when slots are an hour or longer."""
    daily = len(starts) > 1 and (starts[1] - starts[0]).total_seconds() >= 3600
    pattern = "%d %b %H:%M" if daily else "%H:%M"
    return [
        starts[index].strftime(pattern) for index in range(0, len(starts), max(1, len(starts) // 5))
    ]


def bar_chart(slots: list[Slot]) -> dict[str, Any]:
    """Bars per slot, succeeded under failed."""
    peak = max((slot.succeeded + slot.failed for slot in slots), default=0)
    scale_top = max(1, peak)
    step = WIDTH / max(1, len(slots))
    bars = []
    for index, slot in enumerate(slots):
        ok = (HEIGHT - 2) * slot.succeeded / scale_top
        bad = (HEIGHT - 2) * slot.failed / scale_top
        bars.append(
            {
                "x": round(index * step + step * 0.1, 2),
                "width": round(step * 0.8, 2),
                "ok_y": round(HEIGHT - ok, 2),
                "ok_height": round(ok, 2),
                "bad_y": round(HEIGHT - ok - bad, 2),
                "bad_height": round(bad, 2),
                "slot": slot,
            }
        )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "top": scale_top,
        "bars": bars,
        "labels": time_labels([slot.start for slot in slots]),
        "total_succeeded": sum(slot.succeeded for slot in slots),
        "total_failed": sum(slot.failed for slot in slots),
    }


def line_chart(slots: list[TimingSlot], measure: str) -> dict[str, Any]:
    """The p50 and p95 lines of `measure` (`wait` or `run`) per slot; a slot without jobs
    breaks the line rather than drawing a zero."""
    values: list[Percentiles | None] = [getattr(slot, measure) for slot in slots]
    peak = max((found.p95 for found in values if found is not None), default=0.0)
    top = peak * 1.1 if peak > 0 else 1.0
    step = WIDTH / max(1, len(slots))
    series = []
    for name in ("p50", "p95"):
        segments: list[list[str]] = []
        dots: list[dict[str, Any]] = []
        previous = False
        for index, found in enumerate(values):
            if found is None:
                previous = False
                continue
            x = round(index * step + step / 2, 2)
            y = round(HEIGHT - (HEIGHT - 2) * getattr(found, name) / top, 2)
            if not previous:
                segments.append([])
            segments[-1].append(f"{x},{y}")
            dots.append({"x": x, "y": y, "slot": slots[index], "value": getattr(found, name)})
            previous = True
        series.append(
            {"name": name, "lines": [" ".join(points) for points in segments], "dots": dots}
        )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "top": top,
        "series": series,
        "labels": time_labels([slot.start for slot in slots]),
        "empty": all(found is None for found in values),
    }


def timing_context(
    database: Database, window: Window, service: str | None = None
) -> dict[str, Any]:
    """What the wait and run time charts of a page need."""
    timings = activity.timings_over_time(database, window, service=service)
    return {
        "timings": timings,
        "wait_chart": line_chart(timings.slots, "wait"),
        "run_chart": line_chart(timings.slots, "run"),
    }
