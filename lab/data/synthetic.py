"""A procedurally drawn "synthetic flowers" data set that needs no network.

Same on-disk layout as the real set (`images/*.jpg` + `captions/*.txt`, 10
captions each), so every part of the lab runs on it. Each caption is true of
its image: petal colour, centre colour, petal count and petal shape are drawn
from the attributes the caption names, which are also kept in
`attributes.json` so evaluation can check generated images against captions.

Two styles (`STYLES`): "classic" (this module: one centred flower of one size,
flat colours, one caption fixes the picture up to its turn) asks "does G draw
what the caption says?"; "photo" (`lab.data.photo`: framing, tilt, light,
several blooms, backgrounds, camera noise, Reed-style captions) asks "does a
recipe survive one-to-many data?". `synthetic.json` names a set's style.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from lab.errors import LabError
from lab.files import check_folder, os_problem

PETAL_COLOURS = {
    "red": (210, 30, 40),
    "yellow": (240, 210, 40),
    "white": (235, 235, 230),
    "purple": (130, 50, 170),
    "pink": (240, 130, 180),
    "orange": (245, 130, 20),
    "blue": (50, 90, 210),
}
CENTRE_COLOURS = {"yellow": (230, 190, 30), "brown": (110, 65, 25), "black": (25, 20, 20), "green": (90, 160, 60)}
BACKGROUND, LEAF = (40, 90, 40), (30, 110, 35)  # the green behind every flower
COUNT_WORDS = {4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
SHAPES = ("round", "pointed")
DRAW_SIZE, JPEG_QUALITY = 128, 92  # how `lab data synthetic` writes its images by default

TEMPLATES = [
    "this flower has {n} {shape} {pc} petals and a {cc} center.",
    "a flower with {pc} petals arranged around a {cc} center.",
    "the petals of this flower are {pc} and {shape}, with a {cc} middle.",
    "{n} {pc} petals surround the {cc} center of this flower.",
    "this {pc} flower has {n} {shape} petals.",
    "a {pc} flower with a {cc} center and {shape} petals.",
    "this flower is {pc} in color, with {n} petals that are {shape}.",
    "the flower shown has {n} {pc} petals and a {cc} pistil.",
    "{shape} {pc} petals and a small {cc} center make up this flower.",
    "this flower has a {cc} center surrounded by {n} {pc} petals.",
]


def _jitter(colour: tuple[int, int, int], rng: random.Random, amount: int = 18) -> tuple[int, ...]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in colour)


def _petal(
    cx: float, cy: float, angle: float, length: float, width: float, shape: str, steps: int = 24
) -> list[tuple[float, float]]:
    """Outline of one petal from the centre outwards: an ellipse (round) or a lens with a sharp tip (pointed)."""
    points = []
    for i in range(steps + 1):
        t = i / steps  # 0 at the centre, 1 at the tip
        half = width * (2 * math.sqrt(t * (1 - t)) if shape == "round" else math.sin(math.pi * t**0.7) ** 2)
        points.append((t * length, half))
    outline = points + [(x, -y) for x, y in reversed(points)]
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in outline]


def draw_flower(attrs: dict, size: int, rng: random.Random) -> Image.Image:
    """Render one flower with the given attributes (drawn at 2x, then downsampled for smooth edges)."""
    big = size * 2
    image = Image.new("RGB", (big, big), _jitter(BACKGROUND, rng, 20))
    draw = ImageDraw.Draw(image)
    for _ in range(12):  # out-of-focus leaves
        x, y, r = rng.uniform(0, big), rng.uniform(0, big), rng.uniform(big * 0.05, big * 0.2)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_jitter(LEAF, rng, 25))
    image = image.filter(ImageFilter.GaussianBlur(big / 40))
    draw = ImageDraw.Draw(image)
    cx, cy = big / 2 + rng.uniform(-0.06, 0.06) * big, big / 2 + rng.uniform(-0.06, 0.06) * big
    length = big * rng.uniform(0.33, 0.42)
    width = length * (0.55 if attrs["petals"] <= 5 else 0.4)
    start = rng.uniform(0, 2 * math.pi)
    petal_colour = PETAL_COLOURS[attrs["petal_colour"]]
    for k in range(attrs["petals"]):
        angle = start + 2 * math.pi * k / attrs["petals"]
        draw.polygon(
            _petal(cx, cy, angle, length, width / 2, attrs["shape"]),
            fill=_jitter(petal_colour, rng),
            outline=_jitter(petal_colour, rng, 40),
        )
    r = length * rng.uniform(0.22, 0.3)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_jitter(CENTRE_COLOURS[attrs["centre_colour"]], rng, 10))
    return image.resize((size, size), Image.LANCZOS)


def draw_as_loaded(
    attrs: dict, image_size: int, rng: random.Random, draw_size: int = DRAW_SIZE, style: str = "classic"
) -> Image.Image:
    """A fresh flower as the lab's data pipeline delivers a data-set image: drawn at `draw_size`
    (in a fresh scene, for the photo style), saved as JPEG like `generate` does, then resized
    bicubic to `image_size` like `lab.data.dataset.decode_image`.

    Anything that judges generated images against real ones (the quality reader, the real side of
    an evaluation) draws through here, so it sees exactly what the generator was trained to imitate.
    """
    return draw_loaded_scene(attrs, image_size, rng, draw_size, style)[0]


def draw_loaded_scene(
    attrs: dict, image_size: int, rng: random.Random, draw_size: int = DRAW_SIZE, style: str = "classic"
) -> tuple[Image.Image, dict]:
    """`draw_as_loaded`, and the scene the flower was drawn in ({} for the classic style)."""
    image, scene = get_style(style).draw(attrs, draw_size, rng)
    buffer = BytesIO()
    image.save(buffer, "JPEG", quality=scene.get("jpeg_quality", JPEG_QUALITY))
    with Image.open(buffer) as im:
        return im.convert("RGB").resize((image_size, image_size), Image.BICUBIC), scene


def full_caption(attrs: dict, style: str = "classic") -> str:
    """The caption that names all four attributes in plain words, so each one can be scored."""
    return get_style(style).full_caption(attrs)


def captions_for(attrs: dict) -> list[str]:
    words = dict(
        n=COUNT_WORDS[attrs["petals"]], shape=attrs["shape"], pc=attrs["petal_colour"], cc=attrs["centre_colour"]
    )
    return [t.format(**words) for t in TEMPLATES]


def random_attributes(rng: random.Random) -> dict:
    petal = rng.choice(list(PETAL_COLOURS))
    centre = rng.choice([c for c in CENTRE_COLOURS if c != petal])
    return {
        "petal_colour": petal,
        "centre_colour": centre,
        "petals": rng.choice(list(COUNT_WORDS)),
        "shape": rng.choice(SHAPES),
    }


MIN_SIZE = 16  # smaller flowers lose their petals
MANIFEST = "synthetic.json"  # {"style", "images", "size", "seed"}: how a set was drawn


@dataclass(frozen=True)
class Style:
    """How one kind of synthetic set draws a flower and words its captions."""

    name: str
    draw: Callable[[dict, int, random.Random], tuple[Image.Image, dict]]  # attrs, size -> image, its scene
    captions: Callable[[dict, random.Random], list[str]]  # ten captions, all true of the image
    full_caption: Callable[[dict], str]  # names all four attributes: the evaluation caption
    modules: tuple[str, ...]  # the source that defines its pictures (a reader trained on them is keyed by it)


STYLES = ("classic", "photo")


def get_style(name: str) -> Style:
    """The style called `name` (the photo module is imported here: it builds on this one)."""
    if name == "classic":
        return Style(
            "classic",
            lambda a, s, r: (draw_flower(a, s, r), {}),
            lambda a, r: captions_for(a),
            lambda a: captions_for(a)[0],
            (__name__,),
        )
    if name == "photo":
        from lab.data import photo

        return Style(
            "photo", photo.draw_photo, photo.photo_captions, photo.full_photo_caption, (__name__, photo.__name__)
        )
    raise LabError(f"unknown synthetic style '{name}'; choose one of: {', '.join(STYLES)}")


def data_style(root: str | Path) -> str:
    """The style a synthetic set at `root` was drawn in ("classic" for sets drawn before styles existed)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return "classic"
    try:
        style = json.loads(path.read_text()).get("style")
    except (ValueError, AttributeError):
        raise LabError(f"{path} is not a JSON object naming the set's style; draw the set again") from None
    get_style(style)  # refuses styles this version does not know
    return style


def check_destination(root: Path, n: int, size: int, force: bool) -> None:
    """Refuse settings that cannot work and a destination holding anything already: the files
    are named `image_XXXXX` like Oxford-102's, so drawing into a data set would overwrite it."""
    if n < 1:
        raise LabError(f"--n must be at least 1, got {n}")
    if size < MIN_SIZE:
        raise LabError(f"--size must be at least {MIN_SIZE} pixels, got {size}")
    check_folder(root, "", force)


def generate(
    root: str | Path,
    n: int = 512,
    size: int = DRAW_SIZE,
    seed: int = 0,
    progress: bool = True,
    force: bool = False,
    style: str = "classic",
) -> Path:
    """Write `n` synthetic flowers of `style` to `root` in the cvpr2016 layout; returns `root`.

    `attributes.json` maps each image to its four attributes (and, for the photo style, its
    `scene`: the nuisance values). `root` must be empty or missing unless `force` (then
    same-named files are overwritten)."""
    from tqdm import tqdm

    root, chosen = Path(root), get_style(style)
    check_destination(root, n, size, force)
    rng = random.Random(seed)
    attributes = {}
    try:
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "captions").mkdir(exist_ok=True)
        for i in tqdm(range(n), desc=f"drawing {style} synthetic flowers", disable=not progress, unit="img"):
            name = f"image_{i + 1:05d}"
            attrs = random_attributes(rng)
            image, scene = chosen.draw(attrs, size, rng)
            image.save(root / "images" / f"{name}.jpg", quality=scene.get("jpeg_quality", JPEG_QUALITY))
            (root / "captions" / f"{name}.txt").write_text("\n".join(chosen.captions(attrs, rng)) + "\n")
            attributes[name] = {**attrs, "scene": scene} if scene else attrs
        (root / "attributes.json").write_text(json.dumps(attributes, indent=1))
        (root / MANIFEST).write_text(json.dumps({"style": style, "images": n, "size": size, "seed": seed}) + "\n")
    except OSError as e:  # disk full, no permission, a file where a folder should be
        raise LabError(f"cannot write the synthetic flowers into {root}: {os_problem(e)}") from None
    return root


def main(args) -> None:
    """`lab data synthetic DEST [--style photo] [--force]`."""
    print(generate(args.dest, args.n, args.size, args.seed, force=args.force, style=args.style))
