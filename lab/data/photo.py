"""The photo-style synthetic flowers: one caption, many right pictures, as in real Oxford-102 photos.

The classic set (`lab.data.synthetic`) draws one centred flower of one size on one green bokeh, so a
caption leaves only the turn free and a pixel loss against the paired image is nearly a perfect
teacher. Real photos are one-to-many, and so is this set: every image draws a fresh *scene* around
the caption's four attributes (petal colour, centre colour, petal count, petal shape):

- framing: the main bloom from small (half the frame across) to a close-up cut by the frame,
  anywhere in it; camera tilt (up to 45 degrees) foreshortens it into an ellipse, at any turn;
- light: one light direction shades each petal along its length (darker at the base, the side
  facing the light brighter) and the whole picture by an exposure factor;
- the plant: a stem and leaves, sometimes more blooms of the same plant, smaller and out of focus
  behind; backgrounds of four kinds (foliage, soil, sky, dark);
- the camera: sometimes defocus, always some sensor noise, JPEG at a quality of 60-95.

The attributes stay readable by construction (the lab's photo-style reader reads them from
held-out drawings; `docs/training.md` has its scores): the main bloom is never narrower than
two fifths of the frame, however tilted; its centre lies far enough inside the frame that the
base of every petal shows; petals have darker edges so they can be counted; the blooms behind
carry the same attributes, are out of focus and stand beside the main bloom, not on it; clouds
are faint. Each of these was a measured cause of miscounted petals (`docs/training.md`).

Captions are Reed-style: many templates, synonyms ("center", "middle", "stamen", "pistil";
"pointed", "pointy", "sharp"), and some name only one or two attributes, as people's captions do.
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from lab.data.synthetic import CENTRE_COLOURS, COUNT_WORDS, PETAL_COLOURS, _jitter, _petal

BACKGROUNDS = ("foliage", "soil", "sky", "dark")
MIN_BLOOM, MAX_BLOOM = 0.25, 0.62  # radius of the main bloom as a fraction of the frame side
MIN_FACE = 0.2  # the tilted bloom's shortest radius, likewise: smaller, and 64px photos hide the petal count
MAX_TILT = 45.0  # degrees
INSIDE = 0.6  # the main bloom's centre lies this many radii inside the frame: every petal's base shows
MAX_DEFOCUS = 0.5  # px of a 64px picture
JPEG_QUALITIES = (60, 95)

# Colours of the backgrounds: (base, the colours of the blurred shapes on it).
BACKGROUND_COLOURS = {
    "foliage": ((45, 95, 40), [(30, 110, 35), (70, 130, 50), (20, 60, 25), (110, 150, 70)]),
    "soil": ((100, 75, 50), [(75, 55, 35), (130, 100, 70), (60, 45, 30), (145, 120, 90)]),
    "sky": ((120, 170, 225), [(190, 210, 235), (170, 195, 230)]),  # clouds faint: bright discs read as petals
    "dark": ((18, 22, 18), [(30, 50, 30), (40, 40, 35), (10, 12, 10)]),
}
STEM, LEAF = (55, 120, 45), (45, 115, 40)


def random_scene(rng: random.Random) -> dict:
    """The nuisance values of one picture: everything a caption does not say (kept in attributes.json)."""
    radius = math.exp(rng.uniform(math.log(MIN_BLOOM), math.log(MAX_BLOOM)))
    steepest = min(MAX_TILT, math.degrees(math.acos(MIN_FACE / radius)))
    margin = max(0.22, INSIDE * radius)
    return {
        "background": rng.choice(BACKGROUNDS),
        "radius": round(radius, 3),
        "x": round(rng.uniform(margin, 1 - margin), 3),
        "y": round(rng.uniform(margin, 1 - margin), 3),
        "turn": round(rng.uniform(0, 2 * math.pi), 3),
        "tilt": round(rng.uniform(0.0, steepest), 1),  # degrees: the bloom's face is squashed by cos(tilt)
        "tilt_axis": round(rng.uniform(0, math.pi), 3),
        "light": round(rng.uniform(0, 2 * math.pi), 3),
        "light_strength": round(rng.uniform(0.05, 0.3), 3),
        "exposure": round(rng.uniform(0.8, 1.12), 3),
        "companions": rng.choice((0, 0, 1, 1, 2)),
        "leaves": rng.randint(0, 3),
        "defocus": round(rng.uniform(0.0, MAX_DEFOCUS), 2) if rng.random() < 0.35 else 0.0,
        "noise": round(rng.uniform(1.0, 7.0), 1),  # sensor noise, std in 0-255 units
        "jpeg_quality": rng.randint(*JPEG_QUALITIES),
    }


def _scaled(colour: tuple[int, ...], factor: float) -> tuple[int, ...]:
    return tuple(max(0, min(255, round(c * factor))) for c in colour)


def _background(kind: str, side: int, rng: random.Random) -> Image.Image:
    """A backdrop of one kind at `side` pixels, to be blurred with the blooms behind (drawn small: blur is what it is made of)."""
    base, shapes = BACKGROUND_COLOURS[kind]
    image = Image.new("RGB", (side, side), _jitter(base, rng, 15))
    draw = ImageDraw.Draw(image)
    if kind == "sky":  # brighter towards the horizon, a few faint clouds
        horizon = Image.new("RGB", (side, side), _jitter((215, 230, 245), rng, 10))
        image = Image.composite(horizon, image, Image.linear_gradient("L").resize((side, side)))
        draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 5) if kind == "sky" else rng.randint(6, 14)):
        x, y, r = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(0.04, 0.2 if kind != "soil" else 0.08) * side
        draw.ellipse([x - r, y - r * rng.uniform(0.5, 1), x + r, y + r], fill=_jitter(rng.choice(shapes), rng, 15))
    return image


def _tilt(scene: dict) -> tuple[float, float, float, float]:
    """The 2x2 matrix that squashes a bloom's face by cos(tilt) across the tilt axis."""
    a, f = scene["tilt_axis"], math.cos(math.radians(scene["tilt"]))
    c, s = math.cos(a), math.sin(a)
    return c * c + f * s * s, c * s * (1 - f), c * s * (1 - f), s * s + f * c * c


def _place(points: list[tuple[float, float]], m: tuple[float, ...], cx: float, cy: float) -> list[tuple[float, float]]:
    return [(cx + m[0] * x + m[1] * y, cy + m[2] * x + m[3] * y) for x, y in points]


def _bloom(draw: ImageDraw.ImageDraw, attrs: dict, scene: dict, cx: float, cy: float, radius: float, rng) -> None:
    """One bloom: shaded petals with darker edges, then its centre with a ring of stamens, all tilted."""
    m, n, shape = _tilt(scene), attrs["petals"], attrs["shape"]
    width = radius * (0.55 if n <= 5 else 0.4)
    exposure, colour = scene["exposure"], _jitter(PETAL_COLOURS[attrs["petal_colour"]], rng, 14)
    for k in range(n):
        angle = scene["turn"] + 2 * math.pi * k / n + rng.uniform(-0.08, 0.08)
        lit = exposure * (1 + scene["light_strength"] * math.cos(angle - scene["light"]))
        length = radius * rng.uniform(0.92, 1.05)
        # shading along the petal: three nested bands, darker towards the base
        for scale, shade in ((1.0, 1.0), (0.68, 0.9), (0.4, 0.78)):
            petal = _petal(0, 0, angle, length * scale, width / 2 * (0.5 + 0.5 * scale), shape, steps=12)
            edge = _scaled(colour, lit * 0.62) if scale == 1.0 else None
            draw.polygon(_place(petal, m, cx, cy), fill=_scaled(colour, lit * shade), outline=edge)
    centre = CENTRE_COLOURS[attrs["centre_colour"]]
    r = radius * rng.uniform(0.22, 0.28)
    disc = [(r * math.cos(t / 12 * math.pi), r * math.sin(t / 12 * math.pi)) for t in range(24)]
    draw.polygon(_place(disc, m, cx, cy), fill=_scaled(_jitter(centre, rng, 10), exposure))
    dot = max(1.0, r * 0.12)
    for k in range(10):  # stamens: a ring of small lighter dots
        t = 2 * math.pi * k / 10
        x, y = _place([(0.7 * r * math.cos(t), 0.7 * r * math.sin(t))], m, cx, cy)[0]
        draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=_scaled(_jitter(centre, rng, 10), exposure * 1.25))


def _plant(draw: ImageDraw.ImageDraw, scene: dict, cx: float, cy: float, radius: float, side: int, rng) -> None:
    """The stem from the bloom out of the frame, bending a little, and leaves along it."""
    bend, width = rng.uniform(-0.3, 0.3) * side, max(2, round(radius * 0.09))
    stem = [(cx + bend * (t / 8) ** 2, cy + (side * 1.1 - cy) * t / 8) for t in range(9)]
    draw.line(stem, fill=_scaled(_jitter(STEM, rng, 15), scene["exposure"]), width=width, joint="curve")
    for _ in range(scene["leaves"]):
        x, y = stem[rng.randint(3, 8)]
        angle = math.pi / 2 + rng.choice((-1, 1)) * rng.uniform(0.6, 1.4)  # pointing sideways and up
        leaf = _petal(x, y, -angle, radius * rng.uniform(0.8, 1.4), radius * rng.uniform(0.15, 0.25), "pointed")
        draw.polygon(leaf, fill=_scaled(_jitter(LEAF, rng, 20), scene["exposure"]), outline=_scaled(LEAF, 0.6))


def draw_photo(attrs: dict, size: int, rng: random.Random) -> tuple[Image.Image, dict]:
    """One photo-style picture of a flower with these attributes, and the scene it was drawn in.

    The backdrop and the blooms behind are drawn at half size and blurred (they are out of focus;
    that is also what keeps this fast); the main bloom, its stem and leaves at twice the size, then
    reduced, for smooth edges. Sensor noise comes last; JPEG is the saver's (`scene["jpeg_quality"]`)."""
    scene = random_scene(rng)
    half, big = max(8, size // 2), size * 2
    back = _background(scene["background"], half, rng)
    draw = ImageDraw.Draw(back)
    for _ in range(scene["companions"]):  # the same plant's other blooms, smaller, behind, beside the main one
        sub = {**scene, "turn": rng.uniform(0, 2 * math.pi), "tilt": rng.uniform(0, 60)}
        r, angle = scene["radius"] * half * rng.uniform(0.35, 0.55), rng.uniform(0, 2 * math.pi)
        away = scene["radius"] * half * rng.uniform(1.1, 1.6) + r  # their petals stay off the main bloom's
        x, y = scene["x"] * half + away * math.cos(angle), scene["y"] * half + away * math.sin(angle)
        _bloom(draw, attrs, sub, x, y, r, rng)
    image = back.filter(ImageFilter.GaussianBlur(half / 25)).resize((big, big), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    cx, cy, radius = scene["x"] * big, scene["y"] * big, scene["radius"] * big
    _plant(draw, scene, cx, cy, radius, big, rng)
    _bloom(draw, attrs, scene, cx, cy, radius, rng)
    image = image.reduce(2)
    if scene["defocus"]:
        image = image.filter(ImageFilter.GaussianBlur(scene["defocus"] * size / 64))
    noise = np.random.default_rng(rng.getrandbits(32)).standard_normal((size, size, 3), dtype=np.float32)
    pixels = np.asarray(image, dtype=np.float32) + scene["noise"] * noise
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8)), scene


# Reed-style captions. Each template names some of {n} petal count, {shape}, {pc} petal colour,
# {cc} centre colour, {centre} a word for the centre; FULL ones name all four.
FULL = [
    "this flower has {n} {shape} {pc} petals and a {cc} {centre}.",
    "a flower with {n} {pc} petals that are {shape}, around a {cc} {centre}.",
    "this flower has {n} {pc} petals with {shape} tips and a {cc} {centre} in the middle.",
    "{n} {shape} petals in {pc} surround the {cc} {centre} of this flower.",
    "the flower shown has {n} {pc} {shape} petals and a {cc} {centre}.",
    "this {pc} flower has {n} {shape} petals and a {cc} {centre}.",
]
PARTIAL = [
    "this flower has petals that are {pc} with a {cc} {centre}.",
    "the petals on this flower are {pc} and {shape}.",
    "a flower with {pc} petals.",
    "this flower is {pc} in color, with petals that are {shape}.",
    "this flower has {n} petals and a {cc} {centre}.",
    "the {centre} of this flower is {cc}, surrounded by {pc} petals.",
    "a {pc} flower with {shape} petals.",
    "this flower has a {cc} {centre}.",
    "this flower has {n} petals that are {pc}.",
    "a {shape} petaled {pc} flower with a {cc} {centre}.",
    "this flower has {n} {shape} petals.",
    "there are {n} {pc} petals on this flower.",
    "this flower has {pc} petals and a large {cc} {centre}.",
    "a flower with {shape} {pc} petals and {cc} {centre}.",
    "the petals are {pc} and the {centre} is {cc}.",
    "this {pc} flower has a {cc} {centre}.",
]
CENTRE_WORDS = ("center", "center", "middle", "stamen", "pistil")
SHAPE_WORDS = {"round": ("round", "rounded", "broad"), "pointed": ("pointed", "pointy", "sharp")}
PETAL_COLOUR_WORDS = {"purple": ("purple", "violet")}  # a second word where people use one
CAPTIONS_PER_IMAGE, FULL_PER_IMAGE = 10, 3


def _words(attrs: dict, rng: random.Random | None) -> dict:
    """Words for one caption; `rng` None: the plain words (the evaluation caption)."""

    def pick(options: tuple[str, ...]) -> str:
        return options[0] if rng is None else rng.choice(options)

    return {
        "n": COUNT_WORDS[attrs["petals"]],
        "shape": pick(SHAPE_WORDS[attrs["shape"]]),
        "pc": pick(PETAL_COLOUR_WORDS.get(attrs["petal_colour"], (attrs["petal_colour"],))),
        "cc": attrs["centre_colour"],
        "centre": pick(CENTRE_WORDS),
    }


def photo_captions(attrs: dict, rng: random.Random) -> list[str]:
    """Ten captions, each worded afresh: three name all four attributes, seven only some."""
    templates = rng.sample(FULL, FULL_PER_IMAGE) + rng.sample(PARTIAL, CAPTIONS_PER_IMAGE - FULL_PER_IMAGE)
    rng.shuffle(templates)
    return [t.format(**_words(attrs, rng)) for t in templates]


def full_photo_caption(attrs: dict) -> str:
    """The evaluation caption: all four attributes, in their plain words."""
    return FULL[0].format(**_words(attrs, None))
