"""Training throughput of `lab train` against the original tutorial's loop, on the same data, in one run.

The tutorial loop (`benchmarks/tutorial.py`): PIL decode and resize per item,
captions encoded per item or looked up pre-encoded, and, to compare at the
same algorithm, the lab's GAN-CLS step (wrong images included) on that same
data path. All loops use the same DCGAN networks, image size, batch and data.

    python benchmarks/train_throughput.py [--data DIR] [--images 256] [--steps 6] [--encoder mpnet]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from tutorial import TutorialDataset, train_tutorial, tutorial_config

from lab.config import ExperimentConfig, apply
from lab.data.captions import load_captions
from lab.data.dataset import embed_texts
from lab.data.synthetic import generate
from lab.parts.build import load_encoder
from lab.train.trainer import Trainer


def lab_loop(config: ExperimentConfig, run_dir: Path, steps: int) -> float:
    """The lab's own Trainer. Building it fills the caches (timed separately, once per data set);
    after that nothing is decoded or encoded. The losses are read back every `sync_every` steps, as
    `lab train` does, and after the last step, so on a GPU the clock stops when the work is done."""
    trainer = Trainer(config, run_dir, resume=False, progress=False)
    batches = trainer.batches()
    timed = [batches[i % len(batches)] for i in range(steps + 1)]
    trainer.meter.add(trainer.train_batch(timed[0]), len(timed[0]))  # warm-up, as in the tutorial loop
    trainer._sync()
    start = time.perf_counter()
    for indices in timed[1:]:
        trainer.meter.add(trainer.train_batch(indices), len(indices))
        if len(trainer.meter.pending) >= config.sync_every:
            trainer._sync()
    trainer._sync()
    return sum(map(len, timed[1:])) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="", help="a Flowers folder to use instead of drawing synthetic JPEGs")
    parser.add_argument("--images", type=int, default=256, help="images used (drawn, or the first N of --data)")
    parser.add_argument("--source-size", type=int, default=500, help="JPEG side length; Oxford flowers are ~500x600")
    parser.add_argument("--image-size", type=int, default=64, help="training resolution, the same for both loops")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--encoder", default="mpnet", help="the course's encoder; minilm is faster")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = (
            Path(args.data) if args.data else generate(tmp / "flowers", args.images, args.source_size, progress=False)
        )
        config = apply(
            ExperimentConfig(),
            {
                "data_dir": str(root),
                "encoder": args.encoder,
                "image_size": args.image_size,
                "generator.width": args.width,
                "discriminator.width": args.width,
                "batch_size": args.batch_size,
                "split": "all",
                "max_images": args.images,
                "cache_dir": str(tmp / "cache"),
                "out_dir": str(tmp / "run"),
            },
        )
        config = tutorial_config(config)
        encoder = load_encoder(config)
        items = load_captions(root).items[: args.images]
        texts = [it.captions[0] for it in items]
        items = [
            type(it)(it.image_path, it.captions[:1], it.label) for it in items
        ]  # one caption per image, as `captions = "first"`
        embeddings = dict(zip(texts, embed_texts(encoder, texts, tmp / "cache", progress=False)))

        def tutorial(**kwargs) -> float:
            dataset = TutorialDataset(items, args.image_size, embeddings, **kwargs)
            return train_tutorial(config, dataset, encoder.dim, steps=args.steps)[1]

        results = {
            "tutorial, text re-encoded per item": tutorial(encoder=encoder),
            "tutorial, text pre-encoded": tutorial(),
            "tutorial data path, lab's algorithm": tutorial(wrong_images=True),
            "lab train": lab_loop(config, tmp / "run", args.steps),
        }
    source = args.data or f"{args.images} synthetic {args.source_size}px JPEGs"
    print(
        f"{source} -> {args.image_size}px, batch {args.batch_size}, width {args.width}, "
        f"encoder {args.encoder}, {args.steps} timed steps, {torch.get_num_threads()} threads"
    )
    lab = results["lab train"]
    for name, rate in results.items():
        print(f"{name:36s} {rate:8.1f} images/s   lab speed-up x{lab / rate:.2f}")


if __name__ == "__main__":
    main()
