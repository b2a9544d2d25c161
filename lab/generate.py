"""`lab generate`: images for new captions from a trained run.

Noise comes from a seeded generator, so the same seed gives every run the same
noise: that is what makes side-by-side comparisons fair.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from .captions import MAX_CAPTION_CHARS
from .checkpoint import Run, check_compatible, load_run
from .config import ExperimentConfig
from .errors import LabError
from .interfaces import TextEncoder
from .plots import caption_grid
from .registry import ENCODERS


def load_encoder(config: ExperimentConfig, device: str = "cpu") -> TextEncoder:
    return ENCODERS.create(config.encoder, path=config.encoder_path, device=device)


def fixed_noise(n: int, noise_dim: int, seed: int) -> torch.Tensor:
    return torch.randn(n, noise_dim, generator=torch.Generator().manual_seed(seed))


def validate_caption(caption: str) -> str:
    caption = " ".join(caption.split())
    if not caption:
        raise LabError("caption is empty")
    if len(caption) > MAX_CAPTION_CHARS:
        raise LabError(f"caption is {len(caption)} characters; the limit is {MAX_CAPTION_CHARS}")
    return caption


@torch.no_grad()
def generate_images(run: Run, encoder: TextEncoder, captions: list[str], n: int, seed: int = 0) -> torch.Tensor:
    """[len(captions) * n, 3, H, W] in [-1, 1]; caption i owns rows i*n .. i*n+n-1, all captions share the n noises."""
    check_compatible(run.dir, run.text_dim, encoder.dim, run.config.image_size, run.generator.image_size)
    captions = [validate_caption(c) for c in captions]
    device = next(run.generator.parameters()).device
    embeddings = encoder.encode(captions).to(device).repeat_interleave(n, dim=0)
    noise = fixed_noise(n, run.generator.noise_dim, seed).repeat(len(captions), 1).to(device)
    return run.generator(noise, embeddings).cpu()


def main(args) -> None:
    if not 1 <= args.n <= 64:
        raise LabError(f"--n must be between 1 and 64, got {args.n}")
    run = load_run(args.run)
    images = generate_images(run, load_encoder(run.config), args.caption, args.n, args.seed)
    slug = re.sub(r"[^a-z0-9]+", "-", args.caption[0].lower()).strip("-")[:60] or "caption"
    out = Path(args.out) if args.out else run.dir / "generated" / f"{slug}-seed{args.seed}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    caption_grid(images, [validate_caption(c) for c in args.caption], args.n).save(out)
    print(out)
