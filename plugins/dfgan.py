"""DF-GAN's generator (Tao et al. 2022): the text steers every block through affine transforms.

DCGAN's G sees the caption once, at the 1x1 input. DF-GAN fuses the condition
(noise + sentence embedding) into every upsampling block: per block, two MLPs
predict a channel-wise scale and shift from the condition and modulate the
features ("deep fusion"), so the text can shape coarse layout and fine colour
alike. No BatchNorm: the affine transforms take its place.

Channels: `width * [8, 8, 4, 2, 1]`-style, one block per doubling from 4x4 to
`image_size`; 3x3 convolutions, a residual shortcut in each block.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lab.errors import LabError
from lab.interfaces import Generator
from lab.registry import GENERATORS

from .dcgan import conditioning_losses, text_conditioning


class Affine(nn.Module):
    """x * gamma(c) + beta(c), per channel; starts as the identity (gamma 1, beta 0)."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.gamma = nn.Sequential(nn.Linear(cond_dim, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels))
        self.beta = nn.Sequential(nn.Linear(cond_dim, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels))
        for mlp, bias in ((self.gamma, 1.0), (self.beta, 0.0)):
            nn.init.zeros_(mlp[-1].weight)
            nn.init.constant_(mlp[-1].bias, bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return x * self.gamma(cond)[:, :, None, None] + self.beta(cond)[:, :, None, None]


class FusionBlock(nn.Module):
    """Upsample x2, then (affine, LeakyReLU, affine, LeakyReLU, conv3x3) twice, plus a 1x1 shortcut."""

    def __init__(self, cond_dim: int, c_in: int, c_out: int):
        super().__init__()
        self.affines = nn.ModuleList(
            [Affine(cond_dim, c_in), Affine(cond_dim, c_in), Affine(cond_dim, c_out), Affine(cond_dim, c_out)]
        )
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = x
        for i, conv in enumerate((self.conv1, self.conv2)):
            h = F.leaky_relu(self.affines[2 * i](h, cond), 0.2)
            h = F.leaky_relu(self.affines[2 * i + 1](h, cond), 0.2)
            h = conv(h)
        return self.shortcut(x) + h


class DFGANGenerator(Generator):
    """noise -> 4x4 features; each block doubles the size, fused with (noise, text code); 3x3 conv -> RGB."""

    def __init__(
        self,
        text_dim: int = 768,
        noise_dim: int = 100,
        text_proj_dim: int = 256,
        width: int = 32,
        image_size: int = 64,
        cond_aug: bool = False,
        kl_weight: float = 2.0,
    ):
        super().__init__()
        if image_size < 8 or image_size & (image_size - 1):
            raise LabError(f"dfgan image_size must be a power of two, at least 8, got {image_size}")
        if width < 1:
            raise LabError(f"width must be at least 1, got {width}")
        self.text_dim, self.noise_dim, self.image_size = text_dim, noise_dim, image_size
        self.project = text_conditioning(text_dim, text_proj_dim, cond_aug, kl_weight)
        blocks = int(math.log2(image_size // 4))
        channels = [width * min(8, 2 ** (blocks - i)) for i in range(blocks + 1)]  # 64px, w 32: 256, 256, 128, 64, 32
        self.fc = nn.Linear(noise_dim, channels[0] * 16)
        cond_dim = noise_dim + text_proj_dim
        self.blocks = nn.ModuleList(FusionBlock(cond_dim, c_in, c_out) for c_in, c_out in zip(channels, channels[1:]))
        self.to_rgb = nn.Sequential(nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(channels[-1], 3, 3, 1, 1), nn.Tanh())

    def forward(self, noise: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([noise, self.project(text_embedding)], dim=1)
        x = self.fc(noise).view(len(noise), -1, 4, 4)
        for block in self.blocks:
            x = block(x, cond)
        return self.to_rgb(x)

    @property
    def extra_losses(self) -> dict[str, torch.Tensor]:
        return conditioning_losses(self.project)


GENERATORS.register("dfgan")(DFGANGenerator)
