"""Milliseconds per generated image on the CPU, for the page and `lab generate`.

Without --run it times an untrained generator built from the default config
(the cost of a forward pass does not depend on the weights); with --run it
times the run's generator and also its `Pipeline` end to end, which adds
encoding the caption with the run's text encoder.

    python benchmarks/generation_latency.py [--run RUN_DIR] [--batches 1 8 64] [--repeats 20] [--threads 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lab.config import ExperimentConfig
from lab.parts.build import build_generator
from lab.sample.pipeline import Pipeline, fixed_noise


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: allocations, lazy init
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a trained run directory (default: untrained generator from the default config)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads, 0 = torch's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    pipe = Pipeline.from_run(args.run) if args.run else None
    config = pipe.run.config if pipe else ExperimentConfig()
    generator = pipe.generator if pipe else build_generator(config, text_dim=768).eval()
    print(f"generator {config.generator.to_dict()}, {config.image_size}px, {torch.get_num_threads()} CPU threads")
    for batch in args.batches:
        noise, text = fixed_noise(batch, generator.noise_dim, 0), torch.randn(batch, generator.text_dim)
        with torch.no_grad():
            ms = median_ms(lambda: generator(noise, text), args.repeats)
        line = f"batch {batch:4d}: generator {ms / batch:8.2f} ms/image"
        if pipe:
            ms = median_ms(lambda: pipe(["a red flower with five round petals"], batch, 0), args.repeats)
            line += f"   pipeline (one {config.encoder}-encoded caption) {ms / batch:8.2f} ms/image"
        print(line)


if __name__ == "__main__":
    main()
