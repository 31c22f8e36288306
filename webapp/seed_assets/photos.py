"""Listing photos for the demo market, drawn with Pillow instead of downloaded.

Each photo is a simple illustration of the item (a phone, a bicycle, a sofa, a dombra…) on a
background in its category's colour, with the item's short title on a band at the bottom.
The drawing depends only on the listing's text and the photo's number (a seeded random
generator picks the colours), so the same listing always gets the same pixels.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 800, 600  # the market's cards show photos at 4:3
SUPERSAMPLE = 2  # drawn twice as large, then scaled down: smooth edges without anti-aliasing
#: Fonts with Cyrillic (Kazakh letters included), tried in order; with none, no title is drawn.
FONT_NAMES = (
    "DejaVuSans-Bold.ttf",
    "NotoSans-Bold.ttf",
    "LiberationSans-Bold.ttf",
    "Arial Bold.ttf",
    "arialbd.ttf",
    "DejaVuSans.ttf",
    "Arial.ttf",
)

Color = tuple[int, int, int]
Point = tuple[float, float]

#: Background colours per category (a few each; the seeded generator picks one).
BACKGROUNDS: dict[str, list[Color]] = {
    "phones": [(214, 230, 245), (226, 220, 245), (205, 236, 230)],
    "electronics": [(220, 226, 236), (232, 224, 214), (210, 228, 240)],
    "furniture": [(240, 228, 208), (228, 236, 220), (236, 222, 214)],
    "clothing": [(244, 222, 226), (222, 232, 244), (236, 236, 220)],
    "bikes": [(216, 240, 222), (246, 234, 204), (214, 232, 246)],
    "books": [(246, 238, 214), (232, 222, 240), (224, 238, 232)],
    "kids": [(252, 228, 214), (220, 240, 250), (246, 240, 204)],
    "home": [(232, 240, 226), (244, 230, 220), (226, 232, 244)],
    "other": [(240, 232, 214), (226, 236, 236), (236, 226, 240)],
}
ACCENTS: list[Color] = [
    (47, 111, 186),
    (196, 62, 62),
    (46, 139, 87),
    (230, 140, 30),
    (120, 72, 160),
    (40, 40, 48),
    (0, 140, 150),
    (200, 90, 140),
]
DARK: Color = (38, 40, 48)
LIGHT: Color = (250, 250, 252)
WOOD: Color = (150, 98, 52)
FELT: Color = (246, 240, 226)
ORANGE: Color = (214, 110, 36)


def shade(color: Color, factor: float) -> Color:
    """Darker below 1, lighter above 1 (towards white)."""
    if factor <= 1:
        return (int(color[0] * factor), int(color[1] * factor), int(color[2] * factor))
    mix = min(factor - 1, 1)
    return (
        int(color[0] + (255 - color[0]) * mix),
        int(color[1] + (255 - color[1]) * mix),
        int(color[2] + (255 - color[2]) * mix),
    )


class Pen:
    """Draws in item units: (0, 0) is the middle of the picture area, one unit is 100 px."""

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, cy: float, unit: float) -> None:
        self.draw, self.cx, self.cy, self.unit = draw, cx, cy, unit

    def p(self, x: float, y: float) -> Point:
        return (self.cx + x * self.unit, self.cy + y * self.unit)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        a, b = self.p(min(x0, x1), min(y0, y1)), self.p(max(x0, x1), max(y0, y1))
        return [a[0], a[1], b[0], b[1]]

    def w(self, width: float) -> int:
        return max(1, round(width * self.unit))

    def rect(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        fill: Color | None,
        r: float = 0,
        outline: Color | None = None,
        width: float = 0,
    ) -> None:
        self.draw.rounded_rectangle(
            self.box(x0, y0, x1, y1),
            radius=r * self.unit,
            fill=fill,
            outline=outline,
            width=self.w(width) if outline else 0,
        )

    def ellipse(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        fill: Color | None,
        outline: Color | None = None,
        width: float = 0,
    ) -> None:
        self.draw.ellipse(
            self.box(x0, y0, x1, y1),
            fill=fill,
            outline=outline,
            width=self.w(width) if outline else 0,
        )

    def circle(
        self,
        x: float,
        y: float,
        r: float,
        fill: Color | None,
        outline: Color | None = None,
        width: float = 0,
    ) -> None:
        self.ellipse(x - r, y - r, x + r, y + r, fill, outline, width)

    def line(self, points: Sequence[Point], fill: Color, width: float) -> None:
        self.draw.line(
            [self.p(*pt) for pt in points], fill=fill, width=self.w(width), joint="curve"
        )

    def poly(self, points: Sequence[Point], fill: Color, outline: Color | None = None) -> None:
        self.draw.polygon([self.p(*pt) for pt in points], fill=fill, outline=outline)

    def arc(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        start: float,
        end: float,
        fill: Color,
        width: float,
    ) -> None:
        self.draw.arc(self.box(x0, y0, x1, y1), start, end, fill=fill, width=self.w(width))

    def pie(
        self, x0: float, y0: float, x1: float, y1: float, start: float, end: float, fill: Color
    ) -> None:
        self.draw.pieslice(self.box(x0, y0, x1, y1), start, end, fill=fill)

    def shadow(self, width: float, y: float, base: Color) -> None:
        self.ellipse(-width / 2, y - 0.12, width / 2, y + 0.12, shade(base, 0.86))


# ---------------------------------------------------------------------------- the drawings
# Each draws one item around (0, 0), about 5.5 units wide and 3.8 high at most; ``back`` is
# True on a listing's second photo (the other side, or the item from closer).


def phone(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(2.2, 1.95, bg)
    pen.rect(-0.95, -1.9, 0.95, 1.9, DARK, r=0.28)
    if back:
        pen.rect(-0.9, -1.85, 0.9, 1.85, color, r=0.25)
        pen.rect(-0.75, -1.65, 0.05, -0.85, shade(color, 0.8), r=0.18)
        pen.circle(-0.5, -1.45, 0.17, DARK, LIGHT, 0.03)
        pen.circle(-0.5, -1.05, 0.17, DARK, LIGHT, 0.03)
        pen.circle(-0.17, -1.25, 0.06, (250, 240, 200))
        pen.circle(0, 0.2, 0.25, shade(color, 1.25))
        return
    pen.rect(-0.82, -1.75, 0.82, 1.75, shade(color, 1.35), r=0.2)
    pen.rect(-0.3, -1.72, 0.3, -1.55, DARK, r=0.08)
    for row in range(4):
        for col in range(4):
            x, y = -0.62 + col * 0.42, -1.25 + row * 0.5
            pen.rect(x, y, x + 0.28, y + 0.28, shade(ACCENTS[(row * 4 + col) % 8], 1.2), r=0.07)
    pen.rect(-0.35, 1.55, 0.35, 1.6, DARK, r=0.02)


def laptop(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(5.4, 1.35, bg)
    pen.rect(-2.0, -1.7, 2.0, 0.95, (180, 184, 192), r=0.12)
    pen.rect(-1.85, -1.55, 1.85, 0.8, DARK if back else shade(color, 1.3), r=0.05)
    if not back:
        pen.rect(-1.65, -1.35, -0.2, -0.95, LIGHT, r=0.05)
        pen.rect(-1.65, -0.8, 1.0, -0.65, shade(color, 0.9), r=0.03)
        pen.rect(-1.65, -0.5, 0.4, -0.35, shade(color, 0.9), r=0.03)
    else:
        pen.circle(0, -0.4, 0.3, (200, 204, 212))
    pen.poly([(-2.3, 0.95), (2.3, 0.95), (2.65, 1.3), (-2.65, 1.3)], (200, 204, 212))
    pen.rect(-0.5, 1.05, 0.5, 1.2, (170, 174, 182), r=0.04)


def headphones(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(3.6, 1.7, bg)
    pen.arc(-1.45, -1.8, 1.45, 1.2, 180, 360, DARK, 0.22)
    pen.arc(-1.45, -1.8, 1.45, 1.2, 200, 340, shade(color, 1.3), 0.08)
    for side in (-1, 1):
        x = 1.45 * side
        pen.rect(x - 0.45, -0.4, x + 0.45, 1.25, color, r=0.35)
        pen.rect(x - 0.3 * side - 0.12, -0.25, x - 0.3 * side + 0.12, 1.1, DARK, r=0.1)


def gamepad(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(4.6, 1.55, bg)
    if back:  # the console itself
        pen.rect(-0.6, -1.8, 0.6, 1.5, LIGHT, r=0.35, outline=(200, 200, 210), width=0.04)
        pen.rect(-0.2, -1.6, 0.2, 1.3, DARK, r=0.15)
        return
    pen.ellipse(-2.2, -0.6, -0.4, 1.5, color)
    pen.ellipse(0.4, -0.6, 2.2, 1.5, color)
    pen.rect(-1.5, -0.9, 1.5, 0.7, color, r=0.6)
    pen.rect(-1.55, -0.15, -0.75, 0.05, DARK, r=0.03)
    pen.rect(-1.25, -0.45, -1.05, 0.35, DARK, r=0.03)
    for (x, y), c in zip(
        [(1.15, -0.42), (1.45, -0.12), (0.85, -0.12), (1.15, 0.18)],
        [(60, 170, 100), (210, 70, 70), (80, 120, 220), (220, 120, 200)],
        strict=True,
    ):
        pen.circle(x, y, 0.13, c)
    pen.circle(-0.5, 0.45, 0.25, DARK)
    pen.circle(0.5, 0.45, 0.25, DARK)


def tv(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(3.6, 1.6, bg)
    pen.rect(-2.5, -1.8, 2.5, 1.05, DARK, r=0.06)
    if not back:
        pen.rect(-2.38, -1.68, 2.38, 0.93, shade(color, 1.2))
        pen.poly([(-2.38, 0.93), (-0.6, -0.6), (0.5, 0.2), (1.4, -0.9), (2.38, 0.93)], color)
        pen.circle(1.5, -1.1, 0.28, (250, 220, 120))
    pen.rect(-0.15, 1.05, 0.15, 1.4, (90, 92, 100))
    pen.rect(-1.0, 1.4, 1.0, 1.55, (90, 92, 100), r=0.05)


def sofa(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(5.6, 1.45, bg)
    pen.rect(-2.4, -1.0, 2.4, 0.5, shade(color, 0.85), r=0.25)
    pen.rect(-2.2, 0.0, 2.2, 1.0, color, r=0.15)
    for x in (-2.2, 0.0):
        pen.rect(x + 0.05, -0.05, x + 2.15, 0.4, shade(color, 1.15), r=0.12)
    for side in (-1, 1):
        pen.rect(2.6 * side - 0.35, -0.35, 2.6 * side + 0.35, 1.0, shade(color, 0.9), r=0.2)
        pen.rect(2.2 * side - 0.07, 1.0, 2.2 * side + 0.07, 1.35, DARK)
    if back:
        pen.rect(1.0, -0.75, 1.8, -0.05, ORANGE, r=0.15)


def table(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(5.2, 1.55, bg)
    wood = shade(WOOD, 1.05)
    for x in (-2.4, 2.4):  # chairs at both ends
        s = 1 if x > 0 else -1
        pen.rect(x - 0.1 * s, -1.2, x + 0.05 * s, 1.5, shade(wood, 0.8))
        pen.rect(x - 0.6 * s, 0.25, x + 0.05 * s, 0.4, shade(wood, 0.85))
        pen.rect(x - 0.6 * s - 0.05, 0.4, x - 0.6 * s + 0.05, 1.5, shade(wood, 0.8))
    pen.rect(-1.9, -0.35, 1.9, -0.1, wood, r=0.05)
    for x in (-1.7, 1.6):
        pen.rect(x, -0.1, x + 0.12, 1.5, shade(wood, 0.85))
    pen.ellipse(-0.5, -0.75, 0.5, -0.35, LIGHT if not back else color)


def wardrobe(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(3.6, 1.95, bg)
    pen.rect(-1.6, -1.9, 1.6, 1.85, shade(WOOD, 1.3), r=0.05)
    pen.rect(-1.5, -1.8, -0.03, 1.75, shade(WOOD, 1.4))
    pen.rect(0.03, -1.8, 1.5, 1.75, (196, 220, 236))
    pen.line([(0.3, 0.9), (1.2, -0.6)], LIGHT, 0.08)
    pen.line([(0.6, 1.3), (1.3, 0.1)], LIGHT, 0.05)
    pen.rect(-0.2, -0.3, -0.12, 0.3, DARK)
    pen.rect(0.12, -0.3, 0.2, 0.3, DARK)


def chair(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(2.8, 1.85, bg)
    pen.rect(-0.9, -1.8, 0.9, 0.1, color, r=0.3)
    pen.rect(-0.75, -1.6, 0.75, -0.1, shade(color, 0.8), r=0.2)
    pen.rect(-1.1, 0.15, 1.1, 0.5, color, r=0.15)
    pen.rect(-1.3, -0.45, -1.05, 0.2, DARK, r=0.05)
    pen.rect(1.05, -0.45, 1.3, 0.2, DARK, r=0.05)
    pen.rect(-0.08, 0.5, 0.08, 1.3, (120, 124, 132))
    pen.line([(-1.1, 1.6), (0, 1.3), (1.1, 1.6)], DARK, 0.1)
    for x in (-1.1, 1.1, 0):
        pen.circle(x, 1.7 if x else 1.45, 0.12, DARK)


def carpet(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.rect(-2.6, -1.7, 2.6, 1.7, (170, 40, 48))
    pen.rect(-2.35, -1.45, 2.35, 1.45, None, outline=(240, 200, 120), width=0.12)
    pen.rect(-2.0, -1.1, 2.0, 1.1, (30, 60, 110))
    for x in (-1.2, 0.0, 1.2):
        pen.poly([(x, -0.8), (x + 0.55, 0), (x, 0.8), (x - 0.55, 0)], (240, 200, 120))
        pen.poly([(x, -0.4), (x + 0.28, 0), (x, 0.4), (x - 0.28, 0)], (170, 40, 48))
    for i in range(27):  # fringes
        x = -2.5 + i * 0.19
        pen.line([(x, -1.7), (x, -1.9)], (240, 230, 210), 0.04)
        pen.line([(x, 1.7), (x, 1.9)], (240, 230, 210), 0.04)


def samovar(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    brass = (200, 150, 60)
    pen.shadow(2.6, 1.8, bg)
    pen.rect(-0.7, 1.1, 0.7, 1.7, shade(brass, 0.8), r=0.1)
    pen.ellipse(-1.3, -1.1, 1.3, 1.3, brass)
    pen.ellipse(-0.9, -0.7, -0.2, 0.6, shade(brass, 1.35))
    pen.rect(-0.45, -1.6, 0.45, -1.0, shade(brass, 0.9), r=0.1)
    pen.circle(0, -1.75, 0.18, DARK)
    for side in (-1, 1):
        pen.arc(1.0 * side - 0.4, -0.9, 1.0 * side + 0.4, -0.1, 0, 360, DARK, 0.08)
    pen.poly([(0.3, 0.6), (0.5, 0.5), (0.5, 0.95), (0.3, 0.9)], DARK)


def kettle(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(3.0, 1.75, bg)
    pen.rect(-1.3, 1.35, 1.3, 1.7, DARK, r=0.12)
    pen.poly([(-1.0, -1.3), (1.0, -1.3), (1.3, 1.35), (-1.3, 1.35)], color)
    pen.rect(-0.9, -1.5, 0.9, -1.2, shade(color, 0.8), r=0.1)
    pen.arc(0.6, -1.1, 2.1, 1.0, 270, 90, DARK, 0.22)
    pen.poly([(-1.1, -0.6), (-1.8, -1.1), (-1.75, -0.8), (-1.2, -0.2)], color)
    pen.rect(-0.35, -0.6, 0.35, 0.8, (190, 220, 240), r=0.1)


def yurt(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(5.6, 1.5, bg)
    pen.rect(-2.5, -0.3, 2.5, 1.45, FELT)
    for i in range(10):  # the ornament band on the felt wall
        x = -2.4 + i * 0.5
        pen.poly([(x, 0.0), (x + 0.25, -0.2), (x + 0.5, 0.0), (x + 0.25, 0.2)], (170, 40, 48))
    pen.poly([(-2.6, -0.3), (-0.55, -1.75), (0.55, -1.75), (2.6, -0.3)], shade(FELT, 0.93))
    pen.line([(-2.6, -0.3), (-0.55, -1.75)], (170, 40, 48), 0.08)
    pen.line([(2.6, -0.3), (0.55, -1.75)], (170, 40, 48), 0.08)
    pen.ellipse(-0.55, -1.92, 0.55, -1.6, WOOD)  # shangyraq
    pen.line([(-0.55, -1.76), (0.55, -1.76)], shade(WOOD, 0.7), 0.05)
    pen.line([(0, -1.92), (0, -1.6)], shade(WOOD, 0.7), 0.05)
    pen.rect(-0.5, 0.35, 0.5, 1.45, ORANGE, r=0.04)
    pen.poly([(0, 0.55), (0.3, 0.9), (0, 1.25), (-0.3, 0.9)], (250, 220, 120))


def washer(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(3.4, 1.95, bg)
    pen.rect(-1.5, -1.9, 1.5, 1.9, LIGHT, r=0.15, outline=(200, 204, 212), width=0.04)
    pen.line([(-1.5, -1.2), (1.5, -1.2)], (200, 204, 212), 0.04)
    pen.rect(-1.25, -1.65, -0.3, -1.45, (190, 220, 240), r=0.04)
    pen.circle(0.9, -1.55, 0.2, (200, 204, 212))
    pen.circle(0, 0.35, 1.1, (170, 176, 186))
    pen.circle(0, 0.35, 0.85, (120, 160, 200) if not back else color)
    pen.arc(-0.6, -0.25, 0.6, 0.95, 200, 300, LIGHT, 0.08)


def fridge(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(3.0, 1.98, bg)
    steel = (206, 210, 216) if not back else shade(color, 1.4)
    pen.rect(-1.2, -1.95, 1.2, 1.95, steel, r=0.15)
    pen.line([(-1.2, -0.6), (1.2, -0.6)], (150, 154, 162), 0.05)
    pen.rect(0.8, -1.6, 0.92, -0.9, (120, 124, 132), r=0.05)
    pen.rect(0.8, -0.3, 0.92, 0.9, (120, 124, 132), r=0.05)
    pen.rect(-0.8, -1.5, -0.2, -1.2, DARK, r=0.05)


def microwave(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(4.8, 1.25, bg)
    pen.rect(-2.2, -1.1, 2.2, 1.15, (60, 62, 70) if not back else color, r=0.12)
    pen.rect(-1.95, -0.85, 0.9, 0.9, DARK, r=0.08)
    pen.rect(-1.75, -0.65, 0.7, 0.7, (90, 70, 40), r=0.05)
    pen.ellipse(-1.2, 0.2, 0.2, 0.55, LIGHT)
    pen.rect(1.2, -0.8, 1.95, -0.5, (120, 220, 160), r=0.04)
    for row in range(3):
        for col in range(3):
            pen.circle(1.35 + col * 0.22, -0.2 + row * 0.25, 0.07, (180, 184, 192))


def bicycle(pen: Pen, color: Color, back: bool, bg: Color, size: float = 1.0) -> None:
    pen.unit *= size
    pen.shadow(5.0, 1.62, bg)
    rear, front, crank = (-1.55, 0.7), (1.55, 0.7), (-0.15, 0.7)
    seat, head = (-0.6, -0.6), (1.0, -0.6)
    for hub in (rear, front):
        pen.circle(*hub, 0.9, None, DARK, 0.11)
        for k in range(6):
            pen.line(
                [hub, (hub[0] + 0.8 * (k % 2 * 2 - 1) * 0.5, hub[1] + (k - 2.5) * 0.3)],
                (150, 150, 158),
                0.02,
            )
        pen.circle(*hub, 0.08, DARK)
    pen.line([rear, crank, seat, rear], color, 0.1)
    pen.line([seat, head, crank], color, 0.12)
    pen.line([head, front], color, 0.09)
    pen.line([head, (0.9, -0.95), (1.3, -1.0)], DARK, 0.08)
    pen.line([seat, (-0.7, -0.85)], DARK, 0.07)
    pen.rect(-1.05, -0.98, -0.35, -0.82, DARK, r=0.08)
    pen.circle(*crank, 0.18, None, DARK, 0.06)
    if size < 1:  # training wheels
        pen.circle(-1.9, 1.25, 0.3, None, DARK, 0.07)
        pen.line([rear, (-1.9, 1.25)], (150, 150, 158), 0.05)


def kids_bicycle(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    bicycle(pen, color, back, bg, size=0.85)


def scooter(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(4.6, 1.7, bg)
    pen.rect(-1.7, 1.0, 1.3, 1.2, DARK, r=0.08)
    pen.circle(-1.8, 1.3, 0.35, None, DARK, 0.12)
    pen.circle(1.75, 1.3, 0.35, None, DARK, 0.12)
    pen.line([(1.3, 1.1), (1.75, 1.3)], DARK, 0.1)
    pen.line([(1.75, 1.3), (1.2, -1.7)], color, 0.14)
    pen.line([(0.85, -1.72), (1.6, -1.66)], DARK, 0.1)
    pen.rect(-1.5, 0.95, 1.0, 1.0, color)


def helmet(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(4.0, 1.1, bg)
    pen.pie(-1.8, -1.5, 1.8, 1.9, 180, 360, color)
    for x in (-0.9, -0.3, 0.3, 0.9):
        pen.rect(x - 0.12, -1.2, x + 0.12, -0.2, shade(color, 0.6), r=0.1)
    pen.rect(-1.9, 0.15, 1.9, 0.35, DARK, r=0.1)
    pen.rect(-2.3, 0.75, -1.7, 1.05, DARK, r=0.08)  # the lights that come with it
    pen.circle(-2.0, 0.9, 0.1, (220, 40, 40))
    pen.rect(1.7, 0.75, 2.3, 1.05, DARK, r=0.08)
    pen.circle(2.0, 0.9, 0.1, LIGHT)


def boots(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(5.0, 1.75, bg)
    for dx, tone in ((-1.3, 1.0), (1.0, 0.85)):
        c = shade(color, tone)
        pen.poly(
            [
                (dx - 0.6, -1.4),
                (dx + 0.35, -1.4),
                (dx + 0.4, 0.7),
                (dx + 1.3, 0.9),
                (dx + 1.35, 1.55),
                (dx - 0.65, 1.55),
            ],
            c,
        )
        pen.rect(dx - 0.7, 1.45, dx + 1.4, 1.7, DARK, r=0.05)
        for k in range(5):  # fur trim
            pen.circle(dx - 0.5 + k * 0.21, -1.45, 0.16, FELT)


def jacket(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(4.0, 1.95, bg)
    pen.poly(
        [
            (-1.1, -1.5),
            (1.1, -1.5),
            (2.1, 1.2),
            (1.5, 1.35),
            (1.1, -0.2),
            (1.1, 1.8),
            (-1.1, 1.8),
            (-1.1, -0.2),
            (-1.5, 1.35),
            (-2.1, 1.2),
        ],
        color,
    )
    pen.pie(-0.7, -2.0, 0.7, -0.9, 180, 360, shade(color, 0.8))
    for y in (-0.6, 0.3, 1.2):  # quilting
        pen.line([(-1.05, y), (1.05, y)], shade(color, 0.8), 0.04)
    pen.line([(0, -1.45), (0, 1.8)], DARK, 0.06)
    pen.rect(-0.9, 0.6, -0.4, 0.7, shade(color, 0.7))
    pen.rect(0.4, 0.6, 0.9, 0.7, shade(color, 0.7))


def stroller(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(4.2, 1.8, bg)
    pen.pie(-1.6, -1.6, 1.4, 1.2, 180, 360, shade(color, 0.8))
    pen.pie(-1.6, -1.6, 0.1, 0.3, 180, 270, color)
    pen.rect(-1.6, -0.22, 1.4, 0.45, color, r=0.2)
    pen.line([(1.2, 0.0), (2.0, -1.4), (2.3, -1.4)], DARK, 0.09)
    pen.line([(-1.0, 0.45), (-1.2, 1.2)], DARK, 0.07)
    pen.line([(0.9, 0.45), (1.1, 1.2)], DARK, 0.07)
    for x in (-1.2, 1.1):
        pen.circle(x, 1.3, 0.38, None, DARK, 0.1)


def blocks(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(5.0, 1.55, bg)
    rows = [
        [(-2.0, ACCENTS[1]), (-0.4, ACCENTS[0]), (1.2, ACCENTS[3])],
        [(-1.2, ACCENTS[2]), (0.4, ACCENTS[4])],
        [(-0.4, ACCENTS[6])],
    ]
    for level, row in enumerate(rows):
        y = 0.8 - level * 0.85
        for x, c in row:
            pen.rect(x, y, x + 1.5, y + 0.7, c, r=0.05)
            for k in range(3):
                pen.rect(x + 0.15 + k * 0.45, y - 0.15, x + 0.45 + k * 0.45, y, shade(c, 0.85))


def book(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(3.6, 1.95, bg)
    pen.rect(-1.35, -1.85, 1.45, 1.85, shade(color, 0.6), r=0.06)
    pen.rect(-1.4, -1.9, 1.3, 1.8, color, r=0.06)
    pen.rect(-1.4, -1.9, -1.1, 1.8, shade(color, 0.8))
    pen.rect(-0.8, -1.3, 1.0, -0.9, (240, 205, 120), r=0.03)
    pen.rect(-0.6, -0.6, 0.8, -0.45, (240, 205, 120), r=0.03)
    pen.poly([(0.1, 0.3), (0.6, 0.8), (0.1, 1.3), (-0.4, 0.8)], (240, 205, 120))


def books(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(5.0, 1.75, bg)
    spines = [
        (ACCENTS[0], 0.55),
        (ACCENTS[1], 0.45),
        (ACCENTS[2], 0.6),
        (ACCENTS[3], 0.4),
        (ACCENTS[4], 0.5),
        (ACCENTS[6], 0.55),
        (color, 0.45),
    ]
    x = -2.0
    for k, (c, w) in enumerate(spines):
        top = -1.5 + (k % 3) * 0.2
        pen.rect(x, top, x + w, 1.7, c, r=0.03)
        pen.rect(x + 0.08, top + 0.3, x + w - 0.08, top + 0.45, (240, 205, 120))
        x += w + 0.05


def teddy(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    fur = (176, 120, 70)
    pen.shadow(3.0, 1.85, bg)
    pen.circle(-0.8, -1.35, 0.38, fur)
    pen.circle(0.8, -1.35, 0.38, fur)
    pen.ellipse(-1.1, -0.2, 1.1, 1.8, fur)
    pen.circle(0, -0.8, 0.9, fur)
    pen.ellipse(-0.4, -0.75, 0.4, -0.2, shade(fur, 1.4))
    pen.circle(0, -0.6, 0.12, DARK)
    pen.circle(-0.35, -1.0, 0.09, DARK)
    pen.circle(0.35, -1.0, 0.09, DARK)
    pen.poly(
        [(-0.35, -0.05), (0.0, 0.15), (0.35, -0.05), (0.35, 0.3), (0.0, 0.15), (-0.35, 0.3)], color
    )


def dombra(pen: Pen, color: Color, back: bool, bg: Color) -> None:
    pen.shadow(5.4, 1.2, bg)
    wood = (166, 96, 42)
    pen.ellipse(-2.7, -0.8, -0.5, 0.8, wood)
    pen.ellipse(-2.5, -0.62, -0.7, 0.62, shade(wood, 1.2))
    pen.poly([(-0.7, -0.3), (2.2, -0.14), (2.2, 0.14), (-0.7, 0.3)], shade(wood, 0.85))
    pen.rect(2.1, -0.22, 2.75, 0.22, shade(wood, 0.7), r=0.06)
    for x in (-0.2, 0.25, 0.7, 1.1, 1.5, 1.85):  # frets
        pen.line([(x, -0.2), (x, 0.2)], (230, 220, 200), 0.03)
    pen.line([(-2.4, -0.06), (2.3, -0.06)], LIGHT, 0.015)
    pen.line([(-2.4, 0.06), (2.3, 0.06)], LIGHT, 0.015)
    pen.rect(-2.05, -0.3, -1.9, 0.3, shade(wood, 0.6))
    pen.circle(2.5, -0.32, 0.08, DARK)
    pen.circle(2.5, 0.32, 0.08, DARK)


ARTS: dict[str, Callable[[Pen, Color, bool, Color], None]] = {
    "phone": phone,
    "laptop": laptop,
    "headphones": headphones,
    "gamepad": gamepad,
    "tv": tv,
    "sofa": sofa,
    "table": table,
    "wardrobe": wardrobe,
    "chair": chair,
    "carpet": carpet,
    "samovar": samovar,
    "kettle": kettle,
    "yurt": yurt,
    "washer": washer,
    "fridge": fridge,
    "microwave": microwave,
    "bicycle": bicycle,
    "kids_bicycle": kids_bicycle,
    "scooter": scooter,
    "helmet": helmet,
    "boots": boots,
    "jacket": jacket,
    "stroller": stroller,
    "blocks": blocks,
    "book": book,
    "books": books,
    "teddy": teddy,
    "dombra": dombra,
}


# ---------------------------------------------------------------------------- the photo


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | None:
    for name in FONT_NAMES:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return None


def _lines(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: float, most: int = 2
) -> list[str]:
    """``text`` in at most ``most`` lines that fit ``width``; an ellipsis if it does not fit."""
    lines: list[str] = []
    words = text.split()
    while words and len(lines) < most:
        line = words.pop(0)
        while words and draw.textlength(f"{line} {words[0]}", font=font) <= width:
            line = f"{line} {words.pop(0)}"
        lines.append(line)
    if words or (lines and draw.textlength(lines[-1], font=font) > width):
        last = lines[-1]
        while last and draw.textlength(last + "…", font=font) > width:
            last = last[:-1]
        lines[-1] = last.rstrip(" ,") + "…"
    return lines


def draw_photo(
    art: str, category: str, caption: str, seed: str, number: int = 0, color: Color | None = None
) -> Image.Image:
    """The ``number``-th photo (0 or 1) of a listing, as an RGB image of WIDTH × HEIGHT;
    ``color``: the item's own colour when the title names one (else the generator picks)."""
    rng = random.Random(f"{seed}/{number}")
    s = SUPERSAMPLE
    background = rng.choice(BACKGROUNDS.get(category, BACKGROUNDS["other"]))
    if number:
        background = shade(background, 0.94)
    picked = rng.choice(ACCENTS)
    color = color or picked
    image = Image.new("RGB", (WIDTH * s, HEIGHT * s), background)
    draw = ImageDraw.Draw(image)
    # A lighter disc behind the item, a little off centre, like a lamp on a table.
    gx, gy = rng.uniform(-60, 60) * s, rng.uniform(-30, 10) * s
    for k, r in enumerate((330, 270, 210)):
        draw.ellipse(
            [
                (400 - r) * s + gx,
                (240 - r * 0.8) * s + gy,
                (400 + r) * s + gx,
                (240 + r * 0.8) * s + gy,
            ],
            fill=shade(background, 1.0 + 0.1 * (k + 1)),
        )
    zoom = 1.0 if number == 0 else 1.18
    pen = Pen(draw, 400 * s, 245 * s, 100 * s * 1.05 * zoom)
    ARTS[art](pen, color, number == 1, shade(background, 1.1))
    font = _font(34 * s)
    if font is not None and caption:
        lines = _lines(draw, caption, font, 720 * s)
        band_top = HEIGHT * s - (34 + 44 * len(lines)) * s
        draw.rectangle([0, band_top, WIDTH * s, HEIGHT * s], fill=shade(background, 0.35))
        for k, line in enumerate(lines):
            draw.text(
                (WIDTH * s / 2, band_top + (16 + 44 * k) * s),
                line,
                font=font,
                fill=LIGHT,
                anchor="ma",
            )
    return image.reduce(s) if s > 1 else image


def photo_bytes(
    art: str, category: str, caption: str, seed: str, number: int = 0, color: Color | None = None
) -> bytes:
    """``draw_photo`` as JPEG, the way a phone would send it (the app re-encodes it)."""
    out = io.BytesIO()
    draw_photo(art, category, caption, seed, number, color).save(out, "JPEG", quality=92)
    return out.getvalue()
