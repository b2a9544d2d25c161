"""Training throughput of `lab train` against the original tutorial's loop, on the same data, in one run.

The tutorial loop, re-implemented faithfully: a Dataset that opens and resizes
each JPEG with PIL on every access (and, in one variant, encodes each caption
with the sentence encoder on every access), no wrong images, and a generator
step that runs D on the real images a second time for feature matching.
Both loops use the same DCGAN networks, image size, batch size and data.

    python benchmarks/train_throughput.py [--data DIR] [--images 256] [--steps 6] [--encoder mpnet]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from lab.captions import load_captions
from lab.config import ExperimentConfig
from lab.models import build_parts, load_encoder
from lab.synthetic import generate
from lab.train import Trainer


class TutorialDataset(Dataset):
    """As in the tutorial: PIL decode + resize per item; optionally encode the caption per item."""

    def __init__(self, root: Path, size: int, n: int, encoder=None, embeddings=None):
        self.items = load_captions(root).items[:n]
        self.encoder, self.embeddings = encoder, embeddings
        self.transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        image = self.transform(Image.open(self.items[i].image_path).convert("RGB"))
        text = self.items[i].captions[0]
        embedding = self.encoder.encode([text])[0] if self.encoder else self.embeddings[i]
        return image, embedding


def tutorial_loop(config: ExperimentConfig, dataset: TutorialDataset, steps: int) -> float:
    torch.manual_seed(0)
    g, d, _ = build_parts(config, text_dim=dataset.embeddings.shape[1])
    opt_g = torch.optim.Adam(g.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True)
    done, start = 0, None
    while done < steps + 1:
        for real, emb in loader:
            if done == 1:
                start, seen = time.perf_counter(), 0  # first step is warm-up
            noise = torch.randn(len(real), config.noise_dim)
            fake = g(noise, emb)
            real_logits, _ = d(real, emb)
            fake_logits, _ = d(fake.detach(), emb)
            d_loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + F.binary_cross_entropy_with_logits(
                fake_logits, torch.zeros_like(fake_logits)
            )
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            fake_logits, fake_features = d(fake, emb)
            _, real_features = d(real, emb)  # D on real images a second time
            g_loss = (
                F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
                + config.feature_weight * F.mse_loss(fake_features.mean(0), real_features.detach().mean(0))
                + config.l1_weight * F.l1_loss(fake, real)
            )
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            done += 1
            if done > 1:
                seen += len(real)
            if done == steps + 1:
                break
    return seen / (time.perf_counter() - start)


def lab_loop(config: ExperimentConfig, run_dir: Path, steps: int) -> float:
    """The lab's own Trainer. Building it fills the caches (timed separately, once per data set);
    after that nothing is decoded or encoded."""
    trainer = Trainer(config, run_dir, resume=False, progress=False)
    batches = trainer.batches()
    timed = [batches[i % len(batches)] for i in range(steps + 1)]
    trainer.train_batch(timed[0])  # warm-up, as in the tutorial loop
    start = time.perf_counter()
    for indices in timed[1:]:
        trainer.train_batch(indices)
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
        root = Path(args.data) if args.data else generate(tmp / "flowers", args.images, args.source_size, progress=False)
        config = ExperimentConfig(
            data_dir=str(root), encoder=args.encoder, image_size=args.image_size, width=args.width, batch_size=args.batch_size,
            split="all", max_images=args.images, cache_dir=str(tmp / "cache"), out_dir=str(tmp / "run"),
        )
        encoder = load_encoder(config)
        captions = [it.captions[0] for it in load_captions(root).items[: args.images]]
        embeddings = encoder.encode(captions)
        results = {
            "tutorial, text re-encoded per item": tutorial_loop(config, TutorialDataset(root, args.image_size, args.images, encoder, embeddings), args.steps),
            "tutorial, text pre-encoded": tutorial_loop(config, TutorialDataset(root, args.image_size, args.images, None, embeddings), args.steps),
            "lab train": lab_loop(config, tmp / "run", args.steps),
        }
    source = args.data or f"{args.images} synthetic {args.source_size}px JPEGs"
    print(f"{source} -> {args.image_size}px, batch {args.batch_size}, width {args.width}, "
          f"encoder {args.encoder}, {args.steps} timed steps, {torch.get_num_threads()} threads")
    lab = results["lab train"]
    for name, rate in results.items():
        print(f"{name:36s} {rate:8.1f} images/s   lab speed-up x{lab / rate:.2f}")


if __name__ == "__main__":
    main()
