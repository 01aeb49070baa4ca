"""The /stats chart: videos per day for a period, stacked by outcome, as a PNG.

Pure drawing (Pillow, no Discord, no I/O); the caller runs it off the event loop.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from storage.models import DayOutcomes

CHART_WIDTH = 800
CHART_HEIGHT = 400
BACKGROUND = (47, 49, 54)
AXIS = (185, 187, 190)
GRID = (70, 72, 78)
SERIES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("made", (87, 242, 135)),
    ("failed", (237, 66, 69)),
    ("in progress", (150, 152, 157)),
)
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 20, 48, 44


def _nice_top(value: int) -> int:
    """The smallest 'round' number (1, 2, 5 x 10^n) at or above ``value``, at least 1."""
    value = max(1, value)
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def outcome_chart(
    days: Sequence[DayOutcomes],
    *,
    title: str = "Videos per day",
    width: int = CHART_WIDTH,
    height: int = CHART_HEIGHT,
) -> bytes:
    """A PNG of ``width`` x ``height``: one stacked bar per day (made, failed, in progress)."""
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    plot_w = width - _LEFT - _RIGHT
    plot_h = height - _TOP - _BOTTOM
    top = _nice_top(max((d.made + d.failed + d.pending for d in days), default=0))

    draw.text((_LEFT, 12), title, fill=AXIS, font=font)
    legend_x = width - _RIGHT
    for name, colour in reversed(SERIES):
        text_w = draw.textlength(name, font=font)
        legend_x -= int(text_w) + 4
        draw.text((legend_x, 12), name, fill=AXIS, font=font)
        legend_x -= 14
        draw.rectangle((legend_x, 14, legend_x + 10, 24), fill=colour)
        legend_x -= 14

    steps = next(n for n in (4, 5, 2, 1) if top % n == 0)  # whole-number gridlines
    for tick in range(steps + 1):
        value = top * tick // steps
        y = _TOP + plot_h - plot_h * tick / steps
        draw.line((_LEFT, y, _LEFT + plot_w, y), fill=GRID)
        label = str(value)
        draw.text(
            (_LEFT - 6 - draw.textlength(label, font=font), y - 7), label, fill=AXIS, font=font
        )
    draw.line((_LEFT, _TOP, _LEFT, _TOP + plot_h), fill=AXIS)
    draw.line((_LEFT, _TOP + plot_h, _LEFT + plot_w, _TOP + plot_h), fill=AXIS)

    count = max(1, len(days))
    slot = plot_w / count
    bar = max(1.0, slot * 0.7)
    label_every = max(1, int(count * 44 / plot_w) + 1)
    for index, day in enumerate(days):
        x0 = _LEFT + index * slot + (slot - bar) / 2
        y = float(_TOP + plot_h)
        for (_, colour), amount in zip(SERIES, (day.made, day.failed, day.pending), strict=True):
            if amount <= 0:
                continue
            h = plot_h * amount / top
            draw.rectangle((x0, y - h, x0 + bar, y - 1), fill=colour)
            y -= h
        if index % label_every == 0:
            label = day.day.strftime("%m-%d")
            lx = x0 + bar / 2 - draw.textlength(label, font=font) / 2
            draw.text((lx, _TOP + plot_h + 8), label, fill=AXIS, font=font)

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
