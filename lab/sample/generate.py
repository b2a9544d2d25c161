"""`lab generate`: images for new captions from a trained run.

Two outputs: one captioned grid PNG (for people), or with `--out-dir` one PNG
per image plus `index.json` (caption, seed, noise index, file) for scripts
that score images. Captions can also come from a file, one per line; they are
generated in batches with a progress bar, so thousands of captions fit in memory.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from lab.device import resolve_device
from lab.errors import LabError
from lab.files import atomic_write, check_folder, os_problem, write_json
from lab.pixels import to_pil
from lab.plots import caption_grid
from lab.sample.pipeline import MAX_SEED, Pipeline, validate_caption

FLAT_SPREAD = (
    0.02  # mean per-image pixel std, in [-1, 1] units (about 2.5 grey levels of 255), below which images are "flat"
)
MAX_GRID_CAPTIONS = 64  # a grid taller than this is unreadable; use --out-dir
CHUNK_CAPTIONS = 256  # captions encoded and generated at a time with --out-dir


def flat_note(images: torch.Tensor, epochs: int) -> str | None:
    """A line for images with next to no contrast ([N, 3, H, W] in [-1, 1]), else None: what a GAN draws
    before it has learnt anything looks broken to a newcomer, so say that it is expected and why."""
    spread = float(images.float().std(dim=(1, 2, 3)).mean())
    if spread >= FLAT_SPREAD:
        return None
    return (
        f"these images are nearly flat grey (pixel spread {spread:.3f}), as expected after a few training steps "
        f"({epochs} epoch(s) here): G starts from small random weights, so its tanh output sits near 0, mid grey; "
        "it learns the data's average colour first, then blobs where flowers are, shapes after hundreds of steps"
    )


def read_captions(args) -> list[str]:
    captions = list(args.caption)
    if args.captions_file:
        path = Path(args.captions_file)
        if not path.is_file():
            raise LabError(f"captions file not found: {path}")
        try:
            captions += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError:
            raise LabError(f"{path} is not UTF-8 text") from None
    if not captions:
        raise LabError("give at least one caption (or --captions-file FILE)")
    return [validate_caption(c) for c in captions]


def write_images(pipe: Pipeline, captions: list[str], n: int, seed: int, out_dir: Path, force: bool) -> Path:
    """One PNG per image and `index.json`; refuses a folder that holds anything (a file of the same name would
    be replaced) unless `force`."""
    index_path = out_dir / "index.json"
    check_folder(out_dir, "--out-dir", force)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file where a parent folder should be, no permission
        raise LabError(f"cannot create --out-dir {out_dir}: {os_problem(e)}") from None
    entries = []
    bar = tqdm(total=len(captions) * n, desc="generating", unit="img", disable=len(captions) * n < 64)
    for start in range(0, len(captions), CHUNK_CAPTIONS):
        chunk = captions[start : start + CHUNK_CAPTIONS]
        for k, image in enumerate(to_pil(pipe(chunk, n, seed))):
            i, noise_index = start + k // n, k % n
            name = f"{i:05d}_{noise_index:02d}.png"
            atomic_write(out_dir / name, image.save)
            entries.append(
                {"file": name, "caption": captions[i], "caption_index": i, "seed": seed, "noise_index": noise_index}
            )
            bar.update(1)
    bar.close()
    write_json({"run": str(pipe.run.dir) if pipe.run else "", "images": entries}, index_path)
    return index_path


def main(args) -> None:
    if not 1 <= args.n <= 64:
        raise LabError(f"--n must be between 1 and 64, got {args.n}")
    if not 0 <= args.seed <= MAX_SEED:
        raise LabError(f"--seed must be a whole number from 0 to 2**63-1, got {args.seed}")
    if args.out and args.out_dir:
        raise LabError("give --out (one grid PNG) or --out-dir (one PNG per image), not both")
    if args.out and Path(args.out).suffix.lower() != ".png":
        raise LabError(f"--out must name a .png file, got {args.out}")
    captions = read_captions(args)
    if args.out_dir:  # before the run loads: a refusal should not take seconds
        check_folder(Path(args.out_dir), "--out-dir", args.force)
    pipe = Pipeline.from_run(args.run, resolve_device(args.device), trust_code=args.trust_code)
    if args.out_dir:
        print(write_images(pipe, captions, args.n, args.seed, Path(args.out_dir), args.force))
        return
    if len(captions) > MAX_GRID_CAPTIONS:
        raise LabError(
            f"{len(captions)} captions make an unreadable grid (limit {MAX_GRID_CAPTIONS}); use --out-dir DIR for one PNG per image"
        )
    slug = re.sub(r"[^a-z0-9]+", "-", captions[0].lower()).strip("-")[:60] or "caption"
    out = Path(args.out) if args.out else pipe.run.dir / "generated" / f"{slug}-seed{args.seed}.png"
    if out.exists() and not args.force:
        raise LabError(f"{out} exists; use --force to overwrite or pick another --out")
    images = pipe(captions, args.n, args.seed)
    atomic_write(out, caption_grid(images, captions, args.n).save)
    print(out, file=sys.stdout)
    if note := flat_note(images, pipe.run.epoch):
        print(f"note: {note}", file=sys.stderr)
