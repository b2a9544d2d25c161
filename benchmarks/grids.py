"""Sample grids of several runs stacked into one picture, each under its title (the docs' side-by-side figures).

Each run's grid is its `sweep_samples.png` (the sweep's four captions, six noise vectors each: the same
captions and noise for every run), or any PNG given by path.

    python benchmarks/grids.py --out docs/l1_lesson.png \\
        "classic set, main job (L1 200)=runs/sweep/main-job" "photo set, main job (L1 200)=runs/photo-sweep/main-job"
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from lab.experiments.sweep import GRID
from lab.plots import label_font


def stack(pictures: list[tuple[str, Image.Image]], title_height: int = 22) -> Image.Image:
    """The pictures one under the other, each below its title, on white."""
    width = max(p.width for _, p in pictures)
    sheet = Image.new("RGB", (width, sum(p.height + title_height for _, p in pictures)), "white")
    draw, font, y = ImageDraw.Draw(sheet), label_font(14), 0
    for title, picture in pictures:
        draw.text((5, y + 3), title, fill="black", font=font)
        sheet.paste(picture, (0, y + title_height))
        y += picture.height + title_height
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("entries", nargs="+", metavar="TITLE=RUN_OR_PNG")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    pictures = []
    for entry in args.entries:
        title, _, where = entry.rpartition("=")
        path = Path(where) / GRID if Path(where).is_dir() else Path(where)
        if not title or not path.is_file():
            parser.error(f"'{entry}': give TITLE=RUN (a run folder with {GRID}) or TITLE=FILE.png")
        pictures.append((title, Image.open(path).convert("RGB")))
    stack(pictures).save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
