"""The /stats chart: videos per day for a period, stacked by outcome, as a PNG.

Pure drawing (Pillow, no Discord, no I/O); the caller runs it off the event loop. The
labels are in the reader's language (the server's, for /stats) when the font can draw
them; otherwise in English, never as empty boxes.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

from babel.dates import format_skeleton
from PIL import Image, ImageDraw, ImageFont

from core.i18n import ENGLISH, Message, Tr, _
from storage.models import DayOutcomes

CHART_WIDTH = 800
CHART_HEIGHT = 400
BACKGROUND = (47, 49, 54)
AXIS = (185, 187, 190)
GRID = (70, 72, 78)
SERIES: tuple[tuple[Message, tuple[int, int, int]], ...] = (
    (_("made"), (87, 242, 135)),
    (_("failed"), (237, 66, 69)),
    (_("in progress"), (150, 152, 157)),
)
TITLE = _("Videos per day")
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 20, 48, 44
FONT_FILES = ("DejaVuSans.ttf", "NotoSansCJK-Regular.ttc", "NotoSans-Regular.ttf")
"""Fonts tried before Pillow's own (which draws Latin letters only)."""
_NEVER_A_GLYPH = "\U0010fffd"


@functools.cache
def _fonts(size: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, ...]:
    fonts: list[ImageFont.FreeTypeFont | ImageFont.ImageFont] = []
    for name in FONT_FILES:
        try:
            fonts.append(ImageFont.truetype(name, size))
        except OSError:
            continue
    fonts.append(ImageFont.load_default(size=size))
    return tuple(fonts)


def _draws(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str) -> bool:
    """Whether ``font`` has a glyph for every non-ASCII letter of ``text``."""
    missing = bytes(font.getmask(_NEVER_A_GLYPH))
    return all(
        char.isascii() or char.isspace() or bytes(font.getmask(char)) != missing
        for char in set(text)
    )


def _font_for(
    texts: Sequence[str], size: int
) -> ImageFont.FreeTypeFont | ImageFont.ImageFont | None:
    """The first font that draws every text, or None."""
    for font in _fonts(size):
        if all(_draws(font, text) for text in texts):
            return font
    return None


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
    tr: Tr = ENGLISH,
    width: int = CHART_WIDTH,
    height: int = CHART_HEIGHT,
) -> bytes:
    """A PNG of ``width`` x ``height``: one stacked bar per day (made, failed, in progress),
    labelled in ``tr``'s language."""
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    title = tr(TITLE)
    names = [tr(name) for name, _colour in SERIES]
    font = _font_for([title, *names], 13)
    if font is None:  # no font here draws this script: English rather than empty boxes
        tr = ENGLISH
        title, names = str(TITLE), [str(name) for name, _colour in SERIES]
        font = _font_for([title, *names], 13) or _fonts(13)[-1]
    plot_w = width - _LEFT - _RIGHT
    plot_h = height - _TOP - _BOTTOM
    top = _nice_top(max((d.made + d.failed + d.pending for d in days), default=0))

    draw.text((_LEFT, 12), title, fill=AXIS, font=font)
    legend_x = width - _RIGHT
    for name, (_series, colour) in reversed(list(zip(names, SERIES, strict=True))):
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
        label = tr.number(value)
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
        amounts = (day.made, day.failed, day.pending)
        for (_series, colour), amount in zip(SERIES, amounts, strict=True):
            if amount <= 0:
                continue
            h = plot_h * amount / top
            draw.rectangle((x0, y - h, x0 + bar, y - 1), fill=colour)
            y -= h
        if index % label_every == 0:
            label = format_skeleton("MMdd", day.day, locale=tr.babel_locale)
            lx = x0 + bar / 2 - draw.textlength(label, font=font) / 2
            draw.text((lx, _TOP + plot_h + 8), label, fill=AXIS, font=font)

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
