"""The original course tutorial's training loop, re-implemented faithfully, as the yardstick the benchmarks use.

What makes it the tutorial's: a Dataset that opens and resizes each JPEG with
PIL on every access (optionally encoding its caption on every access too), no
wrong images, and a G step that runs D on the real images a second time for
feature matching, with BCE + 100 x feature matching + 50 x L1 to the real
image. Its bugs that would stop it from running at all (a 64px G feeding a
128px D) are not reproduced: it uses the lab's DCGAN parts at one image size.

`wrong_images=True` gives the *lab's* algorithm (GAN-CLS with mismatched
pairs) on the tutorial's data path, so a speed comparison "at the same
algorithm" measures only the implementation.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from lab.checkpoint import save_checkpoint, save_run_config
from lab.config import ExperimentConfig, apply
from lab.data.captions import CaptionedImage
from lab.device import autocast
from lab.parts.build import build_parts


class TutorialDataset(Dataset):
    """One item per caption: PIL decode + resize on every access; the caption encoded per access or looked up."""

    def __init__(
        self,
        items: list[CaptionedImage],
        size: int,
        embeddings: dict[str, torch.Tensor],
        encoder=None,
        wrong_images: bool = False,
        seed: int = 0,
    ):
        self.pairs = [(i, text) for i, item in enumerate(items) for text in item.captions]
        self.items, self.embeddings, self.encoder, self.wrong_images = items, embeddings, encoder, wrong_images
        self.transform = transforms.Compose(
            [transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)]
        )
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def _image(self, i: int) -> torch.Tensor:
        return self.transform(Image.open(self.items[i].image_path).convert("RGB"))

    def __getitem__(self, index: int):
        i, text = self.pairs[index]
        embedding = self.encoder.encode([text])[0] if self.encoder else self.embeddings[text]
        if not self.wrong_images:
            return self._image(i), embedding
        other = (i + self.rng.randrange(1, len(self.items))) % len(self.items)
        return self._image(i), embedding, self._image(other)


def tutorial_step(
    g, d, opt_g, opt_d, real, emb, noise, wrong=None, feature_weight: float = 100.0, l1_weight: float = 50.0
) -> None:
    fake = g(noise, emb)
    real_logits, _ = d(real, emb)
    fake_logits, _ = d(fake.detach(), emb)
    d_loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    d_loss = d_loss + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    if wrong is not None:
        wrong_logits, _ = d(wrong, emb)
        d_loss = d_loss + F.binary_cross_entropy_with_logits(wrong_logits, torch.zeros_like(wrong_logits))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    fake_logits, fake_features = d(fake, emb)
    _, real_features = d(real, emb)  # D on the real images a second time
    g_loss = (
        F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        + feature_weight * F.mse_loss(fake_features.mean(0), real_features.detach().mean(0))
        + l1_weight * F.l1_loss(fake, real)
    )
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()


def tutorial_config(config: ExperimentConfig) -> ExperimentConfig:
    """The tutorial's model and optimiser at the config's data, image size, widths and batch: DCGAN, GAN-CLS weights, Adam(0.5, 0.999), 2e-4."""
    width = {
        "generator.width": config.generator.options.get("width", 64),
        "discriminator.width": config.discriminator.options.get("width", 64),
    }
    return apply(
        config,
        {
            "generator": "dcgan",
            "discriminator": "dcgan",
            "loss": "gan-cls",
            "augment.policy": "",
            "ema": 0.0,
            "lr": 2e-4,
            "lr_d": 0.0,
            "beta1": 0.5,
            "beta2": 0.999,
            **width,
        },
    )


def _wait(device: str) -> None:
    """On a GPU the steps are only queued: the clock may read only once they have run."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def train_tutorial(
    config: ExperimentConfig,
    dataset: TutorialDataset,
    text_dim: int,
    steps: int = 0,
    seconds: float = 0.0,
    warmup: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
):
    """Train for `steps` timed steps or `seconds` of training; returns (generator, images/s over the timed steps, steps done).

    The first `warmup` steps are not timed (allocations, lazy init). On a GPU (`device`) each batch is moved
    there as the tutorial did (`.to(device)`, from ordinary memory); `precision` "bf16" wraps each step in
    autocast, the way a user would add it to the tutorial."""
    torch.manual_seed(config.seed)
    g, d, _ = build_parts(config, text_dim=text_dim)
    g, d = g.to(device), d.to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(config.seed),
    )
    done, seen, start = 0, 0, time.perf_counter()
    deadline = start + seconds if seconds else float("inf")
    while True:
        for batch in loader:
            if done == warmup:
                _wait(device)
                start, seen = time.perf_counter(), 0
            real, emb, wrong = (None if x is None else x.to(device) for x in (batch + [None])[:3])
            with autocast(precision, device):
                tutorial_step(
                    g,
                    d,
                    opt_g,
                    opt_d,
                    real,
                    emb,
                    torch.randn(len(real), g.noise_dim).to(device),
                    wrong,
                    config.loss.options.get("feature_weight", 100.0),
                    config.loss.options.get("l1_weight", 50.0),
                )
            done += 1
            seen += len(real)
            if (steps and done >= steps + warmup) or time.perf_counter() >= deadline:
                _wait(device)
                return g, seen / max(time.perf_counter() - start, 1e-9), done


def save_as_run(generator: torch.nn.Module, config: ExperimentConfig, text_dim: int, run_dir: Path, steps: int) -> Path:
    """A run directory that `lab eval`, `lab compare` and the pipeline read like any other."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_run_config(run_dir, config, text_dim)
    save_checkpoint(run_dir, {"tutorial_steps": steps}, generator)
    return run_dir
