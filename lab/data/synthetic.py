"""A procedurally drawn "synthetic flowers" data set that needs no network.

Same on-disk layout as the real set (`images/*.jpg` + `captions/*.txt`, 10
captions each), so every part of the lab runs on it. Each caption is true of
its image: petal colour, centre colour, petal count and petal shape are drawn
from the attributes the caption names, which are also kept in
`attributes.json` so evaluation can check generated images against captions.
"""

from __future__ import annotations

import json
import math
import random
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


def _petal(cx: float, cy: float, angle: float, length: float, width: float, shape: str) -> list[tuple[float, float]]:
    """Outline of one petal from the centre outwards: an ellipse (round) or a lens with a sharp tip (pointed)."""
    points = []
    for i in range(25):
        t = i / 24  # 0 at the centre, 1 at the tip
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


def draw_as_loaded(attrs: dict, image_size: int, rng: random.Random, draw_size: int = DRAW_SIZE) -> Image.Image:
    """A fresh flower as the lab's data pipeline delivers a data-set image: drawn at `draw_size`,
    saved as JPEG like `generate` does, then resized bicubic to `image_size` like `lab.data.dataset.decode_image`.

    Anything that judges generated images against real ones (the quality reader, the real side of
    an evaluation) draws through here, so it sees exactly what the generator was trained to imitate.
    """
    buffer = BytesIO()
    draw_flower(attrs, draw_size, rng).save(buffer, "JPEG", quality=JPEG_QUALITY)
    with Image.open(buffer) as im:
        return im.convert("RGB").resize((image_size, image_size), Image.BICUBIC)


def full_caption(attrs: dict) -> str:
    """The caption that names all four attributes (the first template), so each one can be scored."""
    return captions_for(attrs)[0]


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


def check_destination(root: Path, n: int, size: int, force: bool) -> None:
    """Refuse settings that cannot work and a destination holding anything already: the files
    are named `image_XXXXX` like Oxford-102's, so drawing into a data set would overwrite it."""
    if n < 1:
        raise LabError(f"--n must be at least 1, got {n}")
    if size < MIN_SIZE:
        raise LabError(f"--size must be at least {MIN_SIZE} pixels, got {size}")
    check_folder(root, "", force)


def generate(
    root: str | Path, n: int = 512, size: int = DRAW_SIZE, seed: int = 0, progress: bool = True, force: bool = False
) -> Path:
    """Write `n` synthetic flowers to `root` in the cvpr2016 layout; returns `root`.

    `root` must be empty or missing unless `force` (then same-named files are overwritten)."""
    from tqdm import tqdm

    root = Path(root)
    check_destination(root, n, size, force)
    rng = random.Random(seed)
    attributes = {}
    try:
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "captions").mkdir(exist_ok=True)
        for i in tqdm(range(n), desc="drawing synthetic flowers", disable=not progress, unit="img"):
            name = f"image_{i + 1:05d}"
            attrs = random_attributes(rng)
            draw_flower(attrs, size, rng).save(root / "images" / f"{name}.jpg", quality=JPEG_QUALITY)
            (root / "captions" / f"{name}.txt").write_text("\n".join(captions_for(attrs)) + "\n")
            attributes[name] = attrs
        (root / "attributes.json").write_text(json.dumps(attributes, indent=1))
    except OSError as e:  # disk full, no permission, a file where a folder should be
        raise LabError(f"cannot write the synthetic flowers into {root}: {os_problem(e)}") from None
    return root


def main(args) -> None:
    """`lab data synthetic DEST [--force]`."""
    print(generate(args.dest, args.n, args.size, args.seed, force=args.force))
