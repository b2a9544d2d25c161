"""Mode seeking (Mao et al. 2019, MSGAN): reward G for using its noise.

A conditional G easily learns to ignore the noise: the caption already says
what to draw, and nothing in GAN-CLS punishes one image per caption (the L1
term even rewards it). MSGAN renders every batch a second time with fresh
noise and adds `weight / (|G(z1, e) - G(z2, e)| / |z1 - z2| + eps)` to G's
loss: images of one caption must move when the noise moves. The wrapper puts
the term in `extra_losses`, so any generator and any loss recipe get it. The
second noise comes from torch's global RNG, which the trainer checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-5


class ModeSeekingGenerator(nn.Module):
    """G plus MSGAN's mode-seeking term, during training forwards only."""

    def __init__(self, generator: nn.Module, weight: float):
        super().__init__()
        self.generator, self.weight = generator, weight
        self.noise_dim = generator.noise_dim
        self._extra: dict[str, torch.Tensor] = {}

    def forward(self, noise: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        fake = self.generator(noise, text_embedding)
        self._extra = dict(getattr(self.generator, "extra_losses", {}))
        if self.training:
            other = torch.randn_like(noise)
            ratio = (fake - self.generator(other, text_embedding)).abs().mean() / (noise - other).abs().mean()
            self._extra["g_ms"] = self.weight / (ratio + EPS)
        return fake

    @property
    def extra_losses(self) -> dict[str, torch.Tensor]:
        return self._extra
