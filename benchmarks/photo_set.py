"""The photo-style synthetic set, measured: how fast it draws, how well the photo reader reads it, how one-to-many it is.

- throughput: both styles drawn side by side at 128px in one process (images/s and the ratio);
- the photo reader (`lab.evaluation.quality.reader_settings("photo")`, trained once and cached):
  its held-out accuracy per attribute, and on every attribute combination drawn with a fresh seed;
- one-to-many: K fresh drawings of each of C attribute combinations per style; the mean pairwise
  distance among one combination's drawings (the spread a single caption allows), in FID Inception
  pool3 features (one feature space for both styles) and in pixels at 32px (the lab's diversity
  measure), as photo / classic ratios; and, in each style's own reader features, that spread over
  the spread among drawings of different combinations (0: a caption fixes the picture, 1: it says nothing).

    python benchmarks/photo_set.py [--size 64] [--combos 20] [--k 6] [--threads 2]
    python benchmarks/photo_set.py --grid docs/photo_flowers.png   # just the docs' picture
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from lab.data.dataset import decode_image
from lab.data.synthetic import STYLES, generate, get_style, random_attributes
from lab.data.weights import lab_home
from lab.evaluation import quality
from lab.evaluation.fid import InceptionFeatures, extract_features


def grid(path: str, columns: int = 12, rows: int = 3, size: int = 64) -> None:
    """The first images of `lab data synthetic DEST --style photo` (seed 0), as training loads them."""
    with tempfile.TemporaryDirectory() as folder:
        root = generate(folder, n=columns * rows, style="photo", progress=False)
        sheet = Image.new("RGB", (columns * size, rows * size))
        for i, file in enumerate(sorted((root / "images").glob("*.jpg"))):
            pixels, _ = decode_image(file, size)
            sheet.paste(Image.fromarray(pixels.permute(1, 2, 0).numpy()), (i % columns * size, i // columns * size))
    sheet.save(Path(path))
    print(f"wrote {path}")


def throughput(images: int = 200) -> dict[str, float]:
    rates = {}
    for name in STYLES:
        style, rng = get_style(name), random.Random(1)
        start = time.perf_counter()
        for _ in range(images):
            style.draw(random_attributes(rng), 128, rng)
        rates[name] = round(images / (time.perf_counter() - start), 1)
    return {**rates, "photo / classic": round(rates["photo"] / rates["classic"], 2)}


def mean_pairwise(features: torch.Tensor) -> float:
    """Mean distance between distinct rows of each group: [groups, K, D] -> one number."""
    k = features.shape[1]
    return float(torch.cdist(features, features).sum((1, 2)).mean() / (k * (k - 1)))


def spreads(style: str, combos: list[dict], k: int, size: int, extractor: InceptionFeatures) -> dict[str, float]:
    images = quality.draw_real([a for a in combos for _ in range(k)], size, seed=500, style=style)
    grouped = images.view(len(combos), k, 3, size, size)
    inception = extract_features(extractor, images, 32, f"Inception features, {style}", progress=False)
    reader = quality.load_reader(size, lab_home(), quality.reader_settings(style))
    with torch.no_grad():
        reader.eval()
        read = reader.features(reader.prepare(images))
    within = mean_pairwise(read.view(len(combos), k, -1))
    across = mean_pairwise(
        read[torch.randperm(len(read), generator=torch.Generator().manual_seed(0))].view(len(combos), k, -1)
    )
    return {
        "inception": mean_pairwise(inception.view(len(combos), k, -1)),
        "pixels_32px": quality.diversity(grouped),
        "reader_within_over_across": within / across,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="image size the readers read (a run's image_size)")
    parser.add_argument("--combos", type=int, default=20, help="attribute combinations drawn")
    parser.add_argument("--k", type=int, default=6, help="drawings of each combination")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads, 0 = torch's default")
    parser.add_argument("--grid", default="", metavar="PNG", help="only draw the docs' grid of 36 photo-style flowers")
    args = parser.parse_args()
    if args.grid:
        return grid(args.grid)
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict = {"throughput_128px_images_per_s": throughput()}
    print(json.dumps(report), flush=True)
    reader = quality.load_reader(args.size, lab_home(), quality.reader_settings("photo"))
    combos = quality.all_combos()
    fresh = quality.attribute_accuracy(reader, quality.draw_real(combos, args.size, seed=77, style="photo"), combos)
    report["photo_reader"] = {
        "held_out": reader.held_out,
        "all_270_combinations_fresh_seed": {a: round(fresh[a], 4) for a in (*quality.ATTRIBUTES, "all_four")},
    }
    print(json.dumps(report["photo_reader"]), flush=True)
    chosen = random.Random(3).sample(combos, args.combos)
    extractor = InceptionFeatures()
    spread = {style: spreads(style, chosen, args.k, args.size, extractor) for style in STYLES}
    report["spread_of_one_caption"] = {
        **spread,
        "photo / classic": {key: spread["photo"][key] / spread["classic"][key] for key in spread["photo"]},
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
