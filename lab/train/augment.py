"""DiffAugment (Zhao et al. 2020): differentiable augmentation of every image D sees.

With a few hundred training images D memorises them and stops teaching G.
Augmenting real *and* fake images, in the D step and the G step alike, with
the same random transforms makes memorising harder while keeping the task
"real or fake?" unchanged: because the transforms are differentiable, G is
still trained through them, and since fakes are augmented too, G is not
pushed to produce augmented-looking images.

Policies, as in the official code: `translation` (shift by up to 1/8 of the
side, zero padded), `cutout` (a zeroed square of half the side), `color`
(brightness, saturation, contrast). The wrapper draws from its own RNG, so a
seeded run (and a resumed one) augments the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lab.config import AUGMENT_POLICIES, check_policy


def _color(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = len(x)
    x = x + (torch.rand(n, 1, 1, 1, generator=g, device=x.device) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(n, 1, 1, 1, generator=g, device=x.device) * 2) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, generator=g, device=x.device) + 0.5) + mean


def _translation(x: torch.Tensor, g: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), generator=g, device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=g, device=x.device)
    yy, xx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    yy = (yy[None] + dy + 1).clamp(0, h + 1)
    xx = (xx[None] + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    index = (yy * (w + 2) + xx).flatten(1)[:, None].expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, index).view_as(x)


def _cutout(x: torch.Tensor, g: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=g, device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=g, device=x.device)
    yy, xx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    inside = ((yy[None] >= cy - ch // 2) & (yy[None] < cy - ch // 2 + ch)) & (
        (xx[None] >= cx - cw // 2) & (xx[None] < cx - cw // 2 + cw)
    )
    return x * (~inside)[:, None].to(x.dtype)


POLICIES = {"color": _color, "translation": _translation, "cutout": _cutout}
assert tuple(POLICIES) == AUGMENT_POLICIES  # the config validates names against the same list


def diff_augment(x: torch.Tensor, policy: str, generator: torch.Generator) -> torch.Tensor:
    for name in check_policy(policy):
        x = POLICIES[name](x, generator)
    return x


class AugmentedDiscriminator(nn.Module):
    """D behind DiffAugment: every image is augmented before D judges it, in every step and recipe."""

    def __init__(self, discriminator: nn.Module, policy: str, seed: int = 0, generator: torch.Generator | None = None):
        """`generator`: the RNG the augmentations draw from; the trainer passes its run's own, so a plain and a
        compiled judge share one checkpointed state. Without it, a new one seeded by `seed`."""
        super().__init__()
        self.discriminator, self.policy = discriminator, policy
        device = next(discriminator.parameters()).device
        self.generator = generator if generator is not None else torch.Generator(device=device).manual_seed(seed)

    def forward(self, image: torch.Tensor, text_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.discriminator(diff_augment(image, self.policy, self.generator), text_embedding)

    def match_scores(self, features: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        return self.discriminator.match_scores(features, text_embedding)
