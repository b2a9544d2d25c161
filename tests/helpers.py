"""Helpers the test files share (fixtures live in conftest.py; plain functions live here)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from lab.data.synthetic import draw_flower, random_attributes

ROOT = Path(__file__).resolve().parents[1]
CLASSES = {"trainclasses.txt": [1, 2, 3], "valclasses.txt": [4], "testclasses.txt": [5, 6]}
PER_CLASS = 4


def flowers_archive(root: Path, classes: dict[str, list[int]] = CLASSES, size: int = 96) -> Path:
    """A miniature of the real archive, `root/cvpr2016_flowers/`: jpg/ + text_c10/class_*/ (captions beside
    .h5/.t7 files) + class files, `PER_CLASS` photos of each of classes 1-6, ten captions each. One photo is
    grayscale, one CMYK, as in the real archive."""
    folder = root / "cvpr2016_flowers"
    (folder / "jpg").mkdir(parents=True)
    rng = random.Random(0)
    number = 0
    for cls in range(1, 7):
        text_dir = folder / "text_c10" / f"class_{cls:05d}"
        text_dir.mkdir(parents=True)
        for _ in range(PER_CLASS):
            number += 1
            name = f"image_{number:05d}"
            image = draw_flower(random_attributes(rng), size, rng)
            image = image.convert("L") if number == 1 else image.convert("CMYK") if number == 2 else image
            image.save(folder / "jpg" / f"{name}.jpg")
            (text_dir / f"{name}.txt").write_text(
                "".join(f"flower {number} of class {cls}, caption {k}\n" for k in range(10))
            )
            (text_dir / f"{name}.h5").write_bytes(b"\x89HDF")
            (text_dir / f"{name}.t7").write_bytes(b"\x00")
    for file, listed in classes.items():
        (folder / file).write_text("".join(f"class_{c:05d}\n" for c in listed))
    return folder


def run_lab(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run the `lab` CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
