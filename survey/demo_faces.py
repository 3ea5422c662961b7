"""Drawn, clearly artificial faces for the demo study, so it needs no photograph of anyone."""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from PIL import Image, ImageDraw

VARIANTS = ("real", "ai", "probe")
SUPERSAMPLE = 2  # drawn at twice the size and reduced, for smooth edges
JPEG_QUALITY = 90

Colour = tuple[int, int, int]
Point = tuple[float, float]

SKIN_TONES: tuple[Colour, ...] = (
    (247, 219, 196),
    (234, 189, 157),
    (214, 160, 118),
    (189, 131, 92),
    (150, 98, 66),
    (116, 74, 50),
    (86, 56, 40),
    (228, 178, 140),
)
HAIR_COLOURS: tuple[Colour, ...] = (
    (28, 22, 20),
    (70, 44, 28),
    (126, 80, 42),
    (158, 72, 36),
    (214, 178, 110),
    (52, 36, 30),
)
GREY_HAIR: tuple[Colour, ...] = ((150, 146, 142), (212, 208, 202))
EYE_COLOURS: tuple[Colour, ...] = (
    (96, 62, 34),
    (62, 112, 172),
    (72, 126, 80),
    (138, 106, 56),
    (112, 126, 140),
    (48, 32, 22),
)
WOMEN_HAIR_STYLES = ("long", "bob", "curly", "bun")
MEN_HAIR_STYLES = ("short", "sidepart", "afro", "buzz")
JACKET_COLOURS: tuple[Colour, ...] = (
    (38, 48, 72),
    (60, 60, 64),
    (92, 40, 46),
    (34, 70, 66),
    (120, 104, 84),
    (24, 28, 34),
)
SHIRT_COLOURS: tuple[Colour, ...] = (
    (238, 240, 242),
    (206, 222, 238),
    (244, 232, 214),
    (226, 214, 232),
)
CASUAL_COLOURS: tuple[Colour, ...] = (
    (196, 64, 52),
    (60, 120, 176),
    (236, 180, 60),
    (76, 140, 92),
    (134, 92, 160),
    (230, 120, 150),
    (90, 90, 96),
)


@dataclass(frozen=True)
class Face:
    """The look of one drawn person: colours, hair and face geometry (in face units)."""

    skin: Colour
    hair: Colour
    hair_style: str
    eyes: Colour
    width: float  # half-width of the face as a share of the half-height
    squareness: float  # 0 = oval, towards 0.5 = square jaw
    chin_taper: float  # narrowing of the lower face towards the chin
    eye_gap: float
    eye_size: float
    brow_weight: float
    nose_length: float
    nose_width: float
    mouth_width: float
    lips: Colour
    beard: bool
    glasses: bool
    older: bool
    jacket: Colour
    shirt: Colour
    casual: Colour
    asymmetry: float  # a real face is never quite symmetric


@dataclass(frozen=True)
class Pose:
    """How the person is framed, turned and drawn in one picture."""

    cx: float
    cy: float
    scale: float  # half-height of the face in pixels
    tilt: float = 0.0  # degrees, clockwise
    turn: float = 0.0  # -1..1: features shift sideways as the head turns
    eye_scale: float = 1.0
    chin_taper: float = 0.0
    polished: bool = False
    symmetric: bool = False
    glasses: bool = False
    hat: str = ""
    casual: bool = False


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    """Blend colour a towards b by t (0..1)."""
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _shade(colour: Colour, factor: float) -> Colour:
    """Darken (factor < 1) or lighten (factor > 1) a colour."""
    if factor < 1:
        return _mix(colour, (0, 0, 0), 1 - factor)
    return _mix(colour, (255, 255, 255), factor - 1)


def face_for(index: int) -> Face:
    """Return the drawn person of an identity index; the same index always looks the same.

    Even indices are drawn as women and odd ones as men, and indices 4-7 (mod 8) older,
    matching the demo study's descriptors (gender by index % 2, age band by index // 2).
    """
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"index must be a non-negative integer, not {index!r}")
    rng = random.Random(f"likeness-demo-face-{index}")
    woman = index % 2 == 0
    age_band = (index // 2) % 4
    # Strides coprime with the palette sizes make the first identities all differ.
    skin = SKIN_TONES[(index * 3) % len(SKIN_TONES)]
    if age_band == 3:
        hair = GREY_HAIR[index % 2]
    elif age_band == 2:
        hair = _mix(HAIR_COLOURS[(index * 5 + 1) % len(HAIR_COLOURS)], GREY_HAIR[0], 0.35)
    else:
        hair = HAIR_COLOURS[(index * 5 + 1) % len(HAIR_COLOURS)]
    styles = WOMEN_HAIR_STYLES if woman else MEN_HAIR_STYLES
    return Face(
        skin=skin,
        hair=hair,
        hair_style=styles[(index // 2) % len(styles)],
        eyes=EYE_COLOURS[(index * 5) % len(EYE_COLOURS)],
        width=rng.uniform(0.70, 0.84) if woman else rng.uniform(0.76, 0.90),
        squareness=(0.05, 0.35, 0.15, 0.45, 0.0)[(index * 3 + 1) % 5],
        chin_taper=rng.uniform(0.18, 0.34),
        eye_gap=rng.uniform(0.38, 0.46),
        eye_size=rng.uniform(0.9, 1.15),
        brow_weight=rng.uniform(0.7, 1.0) if woman else rng.uniform(1.0, 1.4),
        nose_length=rng.uniform(0.28, 0.4),
        nose_width=rng.uniform(0.16, 0.24),
        mouth_width=rng.uniform(0.30, 0.42),
        lips=_mix(_shade(skin, 0.8), (170, 60, 70), 0.35 if woman else 0.15),
        beard=not woman and index % 4 == 3,
        glasses=index % 8 in (2, 5),
        older=age_band >= 2,
        jacket=JACKET_COLOURS[(index * 5 + 2) % len(JACKET_COLOURS)],
        shirt=SHIRT_COLOURS[index % len(SHIRT_COLOURS)],
        casual=CASUAL_COLOURS[(index * 3 + 2) % len(CASUAL_COLOURS)],
        asymmetry=rng.uniform(-1.0, 1.0),
    )


class _Painter:
    """Draws face-relative shapes on a canvas, turned by the pose's tilt."""

    def __init__(self, canvas: Image.Image, pose: Pose) -> None:
        """Prepare to draw on canvas (RGB) in the pose's coordinates."""
        self.draw = ImageDraw.Draw(canvas, "RGBA")
        self.pose = pose
        angle = math.radians(pose.tilt)
        self.cos, self.sin = math.cos(angle), math.sin(angle)

    def at(self, u: float, v: float) -> Point:
        """Map face units (0, 0 = face centre; 1 = half the face height) to pixels."""
        x, y = u * self.pose.scale, v * self.pose.scale
        return (
            self.pose.cx + x * self.cos - y * self.sin,
            self.pose.cy + x * self.sin + y * self.cos,
        )

    def polygon(self, points: Sequence[Point], fill: tuple[int, ...]) -> None:
        """Fill a polygon given in face units."""
        self.draw.polygon([self.at(u, v) for u, v in points], fill=fill)

    def ellipse(
        self,
        u: float,
        v: float,
        ru: float,
        rv: float,
        fill: tuple[int, ...],
        start: float = 0.0,
        end: float = 360.0,
    ) -> None:
        """Fill an ellipse (or the part between two angles, as a chord) in face units."""
        self.polygon(_arc(u, v, ru, rv, start, end), fill)

    def line(self, points: Sequence[Point], fill: tuple[int, ...], width: float) -> None:
        """Draw a polyline in face units; width in face units too."""
        pixels = max(1, round(width * self.pose.scale))
        self.draw.line([self.at(u, v) for u, v in points], fill=fill, width=pixels, joint="curve")


def _arc(u: float, v: float, ru: float, rv: float, start: float, end: float, n: int = 40):
    """Return points of an elliptic arc from start to end degrees (0 = right, 90 = down)."""
    steps = max(4, round(n * (end - start) / 360))
    return [
        (
            u + ru * math.cos(math.radians(start + (end - start) * i / steps)),
            v + rv * math.sin(math.radians(start + (end - start) * i / steps)),
        )
        for i in range(steps + 1)
    ]


def _bezier(p0: Point, p1: Point, p2: Point, n: int = 16) -> list[Point]:
    """Return points along a quadratic Bezier curve."""
    return [
        (
            (1 - t) ** 2 * p0[0] + 2 * (1 - t) * t * p1[0] + t**2 * p2[0],
            (1 - t) ** 2 * p0[1] + 2 * (1 - t) * t * p1[1] + t**2 * p2[1],
        )
        for t in (i / n for i in range(n + 1))
    ]


def _face_outline(face: Face, taper: float, n: int = 56) -> list[Point]:
    """Return the face outline: a superellipse narrowed towards the chin."""
    exponent = 1 - face.squareness * 0.6
    points = []
    for i in range(n):
        t = 2 * math.pi * i / n
        c, s = math.cos(t), math.sin(t)
        u = math.copysign(abs(c) ** exponent, c) * face.width
        v = math.copysign(abs(s) ** (1 if s < 0 else exponent), s)
        if s > 0:
            u *= 1 - taper * s**2
        points.append((u, v))
    return points


def _gradient(size: tuple[int, int], top: Colour, bottom: Colour) -> Image.Image:
    """Return a smooth vertical gradient from top to bottom."""
    mask = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)


def _soft_light(
    canvas: Image.Image, centre: Point, radius: tuple[float, float], colour: Colour, strength: float
) -> None:
    """Add a soft round glow (a highlight or a light source) to the canvas."""
    box = (
        round(centre[0] - radius[0]),
        round(centre[1] - radius[1]),
        round(centre[0] + radius[0]),
        round(centre[1] + radius[1]),
    )
    width, height = box[2] - box[0], box[3] - box[1]
    if width < 2 or height < 2:
        return
    # radial_gradient is black in the middle and white at the rim: invert it, ease it out.
    mask = Image.radial_gradient("L").resize((width, height), Image.Resampling.BILINEAR)
    mask = mask.point(lambda p: round(max(0, 255 - p) ** 2 / 255 * strength))
    canvas.paste(Image.new("RGB", (width, height), colour), box[:2], mask)


# --- backgrounds ---------------------------------------------------------------------------


def _plain_background(size: tuple[int, int], index: int) -> Image.Image:
    """A flat 'photograph' backdrop: a painted wall with a door frame or a room corner."""
    width, height = size
    walls = ((206, 198, 184), (176, 190, 196), (198, 204, 186), (214, 204, 200))
    wall = walls[index % len(walls)]
    canvas = Image.new("RGB", size, wall)
    draw = ImageDraw.Draw(canvas)
    if index % 2:
        # A room corner: one wall a shade darker.
        draw.rectangle((0, 0, width * 0.22, height), fill=_shade(wall, 0.88))
    else:
        frame = _shade(wall, 1.25)
        draw.rectangle((width * 0.74, height * 0.06, width * 0.8, height), fill=frame)
        draw.rectangle((width * 0.8, height * 0.06, width, height), fill=_shade(wall, 0.92))
    return canvas


def _studio_background(size: tuple[int, int], index: int) -> Image.Image:
    """A smooth studio backdrop: a gradient with a soft light behind the head."""
    backdrops = (
        ((92, 116, 140), (30, 40, 58)),
        ((150, 138, 128), (62, 54, 50)),
        ((120, 140, 132), (36, 52, 50)),
        ((160, 160, 170), (70, 72, 86)),
    )
    top, bottom = backdrops[index % len(backdrops)]
    canvas = _gradient(size, top, bottom)
    width, height = size
    _soft_light(
        canvas, (width * 0.5, height * 0.38), (width * 0.7, height * 0.5), _shade(top, 1.3), 0.8
    )
    return canvas


def _candid_background(size: tuple[int, int], index: int) -> Image.Image:
    """An everyday setting for a probe: a street, a park or a cafe."""
    width, height = size
    canvas = Image.new("RGB", size)
    draw = ImageDraw.Draw(canvas)
    scene = index % 3
    if scene == 0:  # street: sky, buildings with windows, pavement
        draw.rectangle((0, 0, width, height), fill=(186, 212, 232))
        buildings = ((150, 120, 104), (188, 178, 160), (120, 124, 132), (170, 140, 120))
        x = 0.0
        for i, colour in enumerate(buildings * 2):
            w = width * (0.18 + 0.06 * ((i * 7 + index) % 3))
            top = height * (0.08 + 0.1 * ((i * 5 + index) % 3))
            draw.rectangle((x, top, x + w, height), fill=colour)
            for wy in range(int(top + height * 0.05), int(height * 0.8), int(height * 0.09)):
                for wx in range(int(x + w * 0.15), int(x + w * 0.8), int(w * 0.3)):
                    draw.rectangle(
                        (wx, wy, wx + w * 0.14, wy + height * 0.045), fill=(90, 104, 120)
                    )
            x += w
        draw.rectangle((0, height * 0.82, width, height), fill=(150, 148, 144))
    elif scene == 1:  # park: sky, trees, grass
        draw.rectangle((0, 0, width, height), fill=(200, 222, 236))
        draw.rectangle((0, height * 0.62, width, height), fill=(118, 160, 84))
        for i in range(6):
            tx = width * (i / 5) + (index * 37 % 60) - 30
            ty = height * (0.42 + 0.06 * (i % 2))
            r = width * (0.13 + 0.03 * (i % 3))
            draw.rectangle((tx - r * 0.12, ty, tx + r * 0.12, height * 0.66), fill=(96, 72, 52))
            draw.ellipse((tx - r, ty - r * 1.3, tx + r, ty + r * 0.5), fill=(72, 120, 64))
    else:  # cafe: warm wall, a bright window, a counter
        draw.rectangle((0, 0, width, height), fill=(170, 120, 84))
        draw.rectangle(
            (width * 0.05, height * 0.1, width * 0.42, height * 0.55), fill=(236, 232, 210)
        )
        draw.rectangle(
            (width * 0.22, height * 0.1, width * 0.25, height * 0.55), fill=(120, 84, 60)
        )
        draw.rectangle((0, height * 0.78, width, height), fill=(110, 72, 48))
    return canvas


# --- the person ---------------------------------------------------------------------------


def _hair_back(p: _Painter, face: Face, colour: Colour, hat: str) -> None:
    """Draw the hair that sits behind the head and shoulders."""
    w = face.width
    fill = (*colour, 255)
    style = face.hair_style
    if style == "long":
        p.polygon(
            _arc(0, -0.1, w * 1.28, 1.12, 180, 360)
            + [(w * 1.4, 1.35), (w * 0.9, 1.7), (-w * 0.9, 1.7), (-w * 1.4, 1.35)],
            fill,
        )
    elif style == "bob":
        p.polygon(
            _arc(0, -0.1, w * 1.3, 1.12, 180, 360) + [(w * 1.32, 0.8), (-w * 1.32, 0.8)], fill
        )
    elif style == "curly":
        for i in range(14):
            angle = math.radians(150 + i * 240 / 13)
            p.ellipse(w * 1.12 * math.cos(angle), -0.1 + 1.05 * math.sin(angle), 0.32, 0.32, fill)
        p.ellipse(0, -0.2, w * 1.15, 1.0, fill)
    elif style == "afro":
        p.ellipse(0, -0.38, w * 1.55, 1.05, fill)
    elif style == "bun":
        if not hat:
            p.ellipse(0, -1.22, 0.34, 0.28, fill)
        p.ellipse(0, -0.12, w * 1.08, 1.0, fill, 180, 360)
    elif style == "buzz":
        p.ellipse(0, -0.05, w * 1.0, 0.97, (*colour, 150), 180, 360)
    else:  # short, sidepart: a cap hugging the skull
        p.ellipse(0, -0.12, w * 1.06, 0.98, fill, 180, 360)


def _hair_front(p: _Painter, face: Face, colour: Colour) -> None:
    """Draw the hair over the forehead: the hairline, fringe or parting of the style."""
    w = face.width
    style = face.hair_style
    fill = (*colour, 150 if style == "buzz" else 255)
    hairline = {"bob": -0.42, "buzz": -0.66, "afro": -0.62, "curly": -0.52}.get(style, -0.6)
    left, right = (-w * 1.02, -0.12), (w * 1.02, -0.12)
    if style == "sidepart":
        curve = _bezier(right, (w * 0.5, -0.38), (-w * 0.25, -0.72)) + _bezier(
            (-w * 0.25, -0.72), (-w * 0.7, -0.62), left
        )
    elif style in ("long", "bun"):
        curve = _bezier(right, (w * 0.6, -0.62), (0.02, -0.72)) + _bezier(
            (0.02, -0.72), (-w * 0.6, -0.62), left
        )
    else:
        curve = _bezier(right, (0, hairline * 1.5 + 0.2), left)
    top = _arc(0, -0.1, w * 1.06, 0.97, 180, 360)
    p.polygon(top + curve, fill)
    if style == "curly":
        for i in range(9):
            u = -w * 0.85 + i * w * 1.7 / 8
            p.ellipse(u, -0.6 + 0.05 * (i % 2), 0.13, 0.12, fill)


def _person(p: _Painter, face: Face, pose: Pose) -> None:
    """Draw head, hair, features and shoulders of a person in a pose."""
    w = face.width
    skin = face.skin
    shadow = _shade(skin, 0.82)
    hair = face.hair
    _hair_back(p, face, hair, pose.hat)

    # Shoulders and clothes.
    top_colour = face.casual if pose.casual else face.jacket
    p.ellipse(0, 2.55, w * 2.6, 1.25, (*top_colour, 255), 180, 360)
    p.polygon([(-w * 2.6, 2.55), (w * 2.6, 2.55), (w * 2.6, 9), (-w * 2.6, 9)], (*top_colour, 255))
    p.polygon(
        [(-w * 0.42, 0.5), (w * 0.42, 0.5), (w * 0.5, 1.45), (-w * 0.5, 1.45)], (*shadow, 255)
    )
    if pose.casual:
        p.ellipse(0, 1.38, w * 0.55, 0.16, (*shadow, 255), 0, 180)
    else:
        p.polygon([(-w * 0.55, 1.36), (w * 0.55, 1.36), (0, 2.1)], (*face.shirt, 255))
        p.polygon([(-w * 0.38, 1.36), (w * 0.38, 1.36), (0, 1.78)], (*shadow, 255))
        lapel = _shade(face.jacket, 0.8)
        p.polygon(
            [(-w * 0.6, 1.34), (-w * 0.2, 1.9), (-w * 0.45, 2.3), (-w * 1.0, 1.5)], (*lapel, 255)
        )
        p.polygon([(w * 0.6, 1.34), (w * 0.2, 1.9), (w * 0.45, 2.3), (w * 1.0, 1.5)], (*lapel, 255))

    # Ears, then the face over them.
    turn = pose.turn
    for side in (-1, 1):
        p.ellipse(side * w * 0.98 + turn * -0.05, 0.05, 0.12, 0.2, (*_shade(skin, 0.9), 255))
    p.polygon(_face_outline(face, face.chin_taper + pose.chin_taper), (*skin, 255))
    if face.beard:
        # The outline runs from the right cheek round the chin to the left one.
        jaw = [pt for pt in _face_outline(face, face.chin_taper + pose.chin_taper) if pt[1] > 0.2]
        inner = _bezier((-w * 0.8, 0.2), (-w * 0.1, 0.3), (-w * 0.25, 0.62)) + _bezier(
            (w * 0.25, 0.62), (w * 0.1, 0.3), (w * 0.8, 0.2)
        )
        p.polygon(jaw + inner, (*_shade(hair, 0.9), 200))
    _hair_front(p, face, hair)

    # Features shift sideways as the head turns; an asymmetric face is drawn 'real'.
    shift = turn * w * 0.28
    lift = 0.0 if pose.symmetric else face.asymmetry * 0.025
    eye_v = -0.05
    eye_ru = 0.17 * face.eye_size * pose.eye_scale * w
    eye_rv = 0.085 * face.eye_size * pose.eye_scale
    for side in (-1, 1):
        # The far eye looks narrower on a turned head.
        squeeze = 1 - 0.35 * max(0.0, side * turn)
        eu = side * face.eye_gap * w + shift
        ev = eye_v + (lift if side > 0 else 0)
        brow = [
            (eu - side * eye_ru * 1.1, ev - eye_rv * 2.1),
            (eu, ev - eye_rv * 2.9 - (0 if pose.symmetric else side * lift * 2)),
            (eu + side * eye_ru * 1.2, ev - eye_rv * 2.2),
        ]
        p.line(brow, (*_shade(hair, 0.7), 255), 0.035 * face.brow_weight)
        p.ellipse(eu, ev, eye_ru * squeeze, eye_rv, (250, 248, 244, 255))
        p.ellipse(eu, ev, eye_rv * 0.9 * squeeze, eye_rv * 0.9, (*face.eyes, 255))
        p.ellipse(eu, ev, eye_rv * 0.42 * squeeze, eye_rv * 0.42, (16, 12, 12, 255))
        glint = 0.28 if pose.polished else 0.16
        p.ellipse(
            eu + eye_rv * 0.3,
            ev - eye_rv * 0.35,
            eye_rv * glint,
            eye_rv * glint,
            (255, 255, 255, 240),
        )
        p.line(
            _arc(eu, ev, eye_ru * squeeze, eye_rv * 1.05, 190, 350),
            (*_shade(skin, 0.45), 255),
            0.02,
        )
        if face.older:
            p.line(_arc(eu, ev + eye_rv * 1.2, eye_ru * 0.8, eye_rv, 20, 160), (*shadow, 200), 0.01)

    # Nose and mouth.
    nose_u = shift * 1.4
    nl, nw = face.nose_length, face.nose_width
    p.line(
        [(nose_u - 0.02, 0.05), (nose_u + 0.03 + turn * 0.04, eye_v + nl + 0.08)],
        (*shadow, 255),
        0.018,
    )
    p.line(_arc(nose_u, eye_v + nl + 0.08, nw * w, 0.06, 20, 160), (*_shade(skin, 0.7), 255), 0.022)
    mouth_v = eye_v + nl + 0.3
    mw = face.mouth_width * w
    lips = face.lips if not pose.polished else _mix(face.lips, (200, 70, 90), 0.2)
    if face.beard:
        p.ellipse(shift, mouth_v - 0.055, mw * 1.05, 0.055, (*_shade(hair, 0.9), 220), 180, 360)
    p.ellipse(shift, mouth_v, mw, 0.07, (*lips, 255), 0, 180)
    p.ellipse(shift, mouth_v + 0.005, mw * 0.9, 0.045, (*_shade(lips, 0.9), 255), 180, 360)
    p.line(_arc(shift, mouth_v - 0.02, mw, 0.05, 10, 170), (*_shade(lips, 0.55), 255), 0.014)
    if face.older:
        p.line(_arc(shift, mouth_v - 0.1, mw * 1.5, 0.22, 200, 250), (*shadow, 180), 0.012)
        p.line(_arc(shift, mouth_v - 0.1, mw * 1.5, 0.22, 290, 340), (*shadow, 180), 0.012)
        for i in range(2):
            p.line(_arc(0, -0.55 + i * 0.08, w * 0.35, 0.05, 200, 340), (*shadow, 150), 0.01)

    if pose.glasses:
        frame = (30, 30, 34, 255)
        for side in (-1, 1):
            eu = side * face.eye_gap * w + shift
            p.line(_arc(eu, eye_v, eye_ru * 1.5, eye_rv * 2.3, 0, 360), frame, 0.025)
        p.line(
            [
                (-face.eye_gap * w + eye_ru * 1.5 + shift, eye_v),
                (face.eye_gap * w - eye_ru * 1.5 + shift, eye_v),
            ],
            frame,
            0.025,
        )
    if pose.hat == "cap":
        cap = (*_shade(face.casual, 0.8), 255)
        p.ellipse(0, -0.5, w * 1.12, 0.62, cap, 180, 360)
        p.polygon([(-w * 1.1, -0.5), (w * 1.1, -0.5), (w * 1.5, -0.38), (-w * 0.2, -0.36)], cap)
    elif pose.hat == "beanie":
        beanie = (*_shade(face.casual, 0.7), 255)
        p.ellipse(0, -0.34, w * 1.14, 0.86, beanie, 180, 360)
        p.polygon(
            [(-w * 1.16, -0.36), (w * 1.16, -0.36), (w * 1.14, -0.22), (-w * 1.14, -0.22)], beanie
        )


def _polish(canvas: Image.Image, p: _Painter, face: Face) -> None:
    """Add the glossy highlights of a retouched headshot: skin, hair and lips."""
    w = face.width
    scale = p.pose.scale
    for (u, v), (ru, rv), strength in (
        ((0, -0.42), (0.35 * w, 0.16), 0.35),
        ((-0.42 * w, 0.28), (0.2 * w, 0.12), 0.25),
        ((0.42 * w, 0.28), (0.2 * w, 0.12), 0.25),
        ((0.02, 0.32), (0.07, 0.05), 0.35),
        ((-0.45 * w, -0.88), (0.3 * w, 0.1), 0.45),
    ):
        _soft_light(canvas, p.at(u, v), (ru * scale, rv * scale), (255, 250, 244), strength)


def _lighting(image: Image.Image, tint: Colour, amount: float, side_shadow: float) -> Image.Image:
    """Give a whole picture the cast of its light and a darker side, like an unposed snapshot."""
    tinted = Image.blend(image, Image.new("RGB", image.size, tint), amount)
    if side_shadow <= 0:
        return tinted
    mask = Image.linear_gradient("L").rotate(90).resize(image.size, Image.Resampling.BILINEAR)
    mask = mask.point(lambda x: round(x * side_shadow))
    return Image.composite(_shade_image(tinted, 0.55), tinted, mask)


def _shade_image(image: Image.Image, factor: float) -> Image.Image:
    """Return a darker copy of an image."""
    return image.point(lambda x: round(x * factor))


def _pose_for(face: Face, variant: str, index: int, size: tuple[int, int]) -> tuple[Pose, Callable]:
    """Return the pose of a variant and the function that draws its background."""
    width, height = size
    scale = height * 0.2
    headshot = Pose(cx=width * 0.5, cy=height * 0.42, scale=scale, glasses=face.glasses)
    if variant == "real":
        return headshot, _plain_background
    if variant == "ai":
        return (
            replace(
                headshot,
                cy=height * 0.41,
                scale=scale * 1.06,
                eye_scale=1.12,
                chin_taper=0.05,
                polished=True,
                symmetric=True,
            ),
            _studio_background,
        )
    rng = random.Random(f"likeness-demo-probe-{index}")
    side = rng.choice((-1, 1))
    hat = "" if face.glasses or index % 3 == 1 else ("cap" if index % 2 else "beanie")
    probe = Pose(
        cx=width * (0.5 + side * 0.1),
        cy=height * 0.47,
        scale=scale * 0.82,
        tilt=side * rng.uniform(4, 8),
        turn=-side * rng.uniform(0.4, 0.7),
        glasses=not face.glasses and not hat,
        hat=hat,
        casual=True,
    )
    return probe, _candid_background


def render(index: int, variant: str, size: tuple[int, int] = (480, 600)) -> bytes:
    """Return a JPEG of drawn identity ``index`` as a 'real' photo, an 'ai' headshot or a 'probe'.

    The same index and variant always give the same bytes; the three variants share the
    person's colours and face geometry, so a viewer sees one drawn person in three pictures.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    width, height = size
    if width < 64 or height < 64:
        raise ValueError(f"size must be at least 64×64 pixels, not {size!r}")
    face = face_for(index)
    big = (width * SUPERSAMPLE, height * SUPERSAMPLE)
    pose, background = _pose_for(face, variant, index, big)
    canvas = background(big, index)
    painter = _Painter(canvas, pose)
    _person(painter, face, pose)
    if pose.polished:
        _polish(canvas, painter, face)
    image = canvas.reduce(SUPERSAMPLE)
    if variant == "probe":
        warm = index % 2 == 0
        image = _lighting(image, (255, 190, 120) if warm else (120, 150, 200), 0.12, 0.5)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()
