"""Images per second through the FID feature extractor (TF1 resize to 299px + Inception pool3).

This is what bounds `lab eval`: generating a few hundred 64px images takes
seconds, the Inception pass takes most of the time on a CPU.

    python benchmarks/fid_throughput.py [--size 64] [--images 64] [--batches 8 32] [--device auto] [--threads 0]
"""

from __future__ import annotations

import argparse
import time

import torch

from lab.device import resolve_device
from lab.evaluation.fid import InceptionFeatures, extract_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="side of the input images (they are resized to 299)")
    parser.add_argument("--images", type=int, default=64, help="images timed per batch size")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads, 0 = torch's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    extractor = InceptionFeatures().to(device)
    images = torch.randint(
        0, 256, (args.images, 3, args.size, args.size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    print(f"{args.size}px uint8 images -> 299px -> 2048 features on {device} ({torch.get_num_threads()} CPU threads)")
    for batch in args.batches:
        extractor(images[:batch])  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        extract_features(extractor, images, batch, progress=False)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        print(f"batch {batch:4d}: {args.images / elapsed:8.1f} images/s ({elapsed / args.images * 1000:.0f} ms/image)")


if __name__ == "__main__":
    main()
