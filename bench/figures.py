"""One benchmark figure, its baseline and target, and the table and JSON they make.

`met` is always computed from the measurement against the target's threshold (and any
extra conditions the figure names, such as "0 429s"); nothing sets it by hand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    """A measured value next to its same-run baseline and its target."""

    name: str
    value: float
    unit: str
    baseline: float | None
    target: str
    met: bool
    ratio: float | None = None
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object for `--json` (the issue's seven keys, then the details)."""
        data = asdict(self)
        return {
            "name": data["name"],
            "value": _finite(data["value"]),
            "unit": data["unit"],
            "baseline": _finite(data["baseline"]),
            "ratio": _finite(data["ratio"]),
            "target": data["target"],
            "met": data["met"],
            "note": data["note"],
            "detail": data["detail"],
        }


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 4)


def ratio_of(value: float, baseline: float | None) -> float | None:
    """value / baseline, or None when there is no meaningful baseline."""
    if baseline is None or baseline == 0:
        return None
    return value / baseline


def at_most(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: float | None,
    limit: float,
    target: str,
    conditions: Sequence[tuple[bool, str]] = (),
    by_ratio: bool = False,
    note: str = "",
    detail: dict[str, Any] | None = None,
) -> Figure:
    """A figure met when `value` (or its ratio to the baseline) is at most `limit`.

    `conditions` are further (holds, description) checks that must all hold, e.g.
    (rate_limited == 0, "0 429s"); the unmet ones are named in the note.
    """
    ratio = ratio_of(value, baseline)
    measured = ratio if by_ratio else value
    ok = measured is not None and math.isfinite(measured) and measured <= limit
    return _with_conditions(
        name, value, unit, baseline, ratio, target, ok, conditions, note, detail
    )


def at_least(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: float | None,
    limit: float,
    target: str,
    conditions: Sequence[tuple[bool, str]] = (),
    by_ratio: bool = False,
    note: str = "",
    detail: dict[str, Any] | None = None,
) -> Figure:
    """A figure met when `value` (or its ratio to the baseline) is at least `limit`."""
    ratio = ratio_of(value, baseline)
    measured = ratio if by_ratio else value
    ok = measured is not None and math.isfinite(measured) and measured >= limit
    return _with_conditions(
        name, value, unit, baseline, ratio, target, ok, conditions, note, detail
    )


def _with_conditions(
    name: str,
    value: float,
    unit: str,
    baseline: float | None,
    ratio: float | None,
    target: str,
    ok: bool,
    conditions: Sequence[tuple[bool, str]],
    note: str,
    detail: dict[str, Any] | None,
) -> Figure:
    failed = [text for holds, text in conditions if not holds]
    if failed:
        note = "; ".join(filter(None, [note, "not met: " + ", ".join(failed)]))
    return Figure(
        name=name,
        value=value,
        unit=unit,
        baseline=baseline,
        target=target,
        met=ok and not failed,
        ratio=ratio,
        note=note,
        detail=detail or {},
    )


def _show(value: float | None, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "-"
    text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def render_table(figures: Sequence[Figure], header: str) -> str:
    """The figures as a plain-text table under a one-paragraph header."""
    rows = [("figure", "value", "baseline", "ratio", "target", "met")]
    for fig in figures:
        rows.append(
            (
                fig.name,
                _show(fig.value, fig.unit),
                _show(fig.baseline, fig.unit),
                "-" if fig.ratio is None else f"{fig.ratio:.2f}x",
                fig.target,
                "yes" if fig.met else "NO",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [header, ""]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    notes = [f"- {fig.name}: {fig.note}" for fig in figures if fig.note]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def render_markdown(figures: Sequence[Figure]) -> str:
    """The figures as a Markdown table (for README.md)."""
    lines = [
        "| figure | value | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for fig in figures:
        ratio = "-" if fig.ratio is None else f"{fig.ratio:.2f}×"
        met = "yes" if fig.met else "**no**"
        lines.append(
            f"| {fig.name} | {_show(fig.value, fig.unit)} | {_show(fig.baseline, fig.unit)} "
            f"| {ratio} | {fig.target} | {met} |"
        )
    return "\n".join(lines)


def write_json(figures: Sequence[Figure], path: Path) -> None:
    """Write the figures as a JSON list, one object per figure."""
    path.write_text(json.dumps([f.to_json() for f in figures], indent=2) + "\n", encoding="utf-8")
