"""The photo-style attribute reader: find the main bloom, then read it, as a person does.

A photo-style picture (`lab.data.photo`) puts its main bloom anywhere, from half the frame across
to a close-up, tilted, among blurred blooms of the same plant. One small CNN reading the whole
64 px picture learnt the colours but not the petal count: 21% on held-out drawings, chance 20%
(4,000 drawings, 600 steps; measured on this project's 2-core CPU, 2026-12-07). So the reader
works in two steps:

1. a locator (the classic reader's network on the picture at 32 px) regresses where the main
   bloom is and how big: its centre (x, y) and radius as fractions of the frame, trained on the
   drawings' own scene values;
2. the classic reader's network reads the four attributes from a square crop around that bloom,
   resampled to 32 px, so it sees every bloom centred and at one scale, as on the classic set.

Training crops around the true bloom, shifted and scaled a little (the locator is never exact),
and mirrored half of the time; reading, including the held-out score, crops where the locator says.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lab.evaluation.quality import READ_SIZE, AttributeReader, conv_stack

CROP = 1.15  # half the crop's side, in bloom radii: the longest petal reaches 1.05
JITTER = 0.1  # training crops: centre moved by N(0, JITTER) radii, radius scaled by exp(N(0, JITTER))
LOCATE_WEIGHT = 10.0  # the locator's squared error (fractions of the frame) against the heads' cross-entropy


class BloomReader(AttributeReader):
    """`AttributeReader`'s network reading a crop around the bloom a locator finds; same interface."""

    def __init__(self, image_size: int, width: int = 16):
        super().__init__(image_size, width)
        self.locator = nn.Sequential(
            conv_stack(width),
            nn.Linear(width * 4 * (READ_SIZE // 8) ** 2, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, 3),
        )

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 3, S, S] -> float [-1, 1] at full size: the crops are cut from it."""
        return self.check(images)

    def locate(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared images -> [N, 3]: the main bloom's centre x, y and log radius, as fractions of the frame."""
        return self.locator(F.interpolate(x, size=READ_SIZE, mode="area"))

    def crop(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """READ_SIZE crops of `x` around `boxes` (x, y, log radius); outside the frame reads as grey (0)."""
        half = 2 * CROP * boxes[:, 2].exp()  # in grid units: the frame spans [-1, 1]
        zero = torch.zeros_like(half)
        theta = torch.stack(
            [torch.stack([half, zero, 2 * boxes[:, 0] - 1], 1), torch.stack([zero, half, 2 * boxes[:, 1] - 1], 1)], 1
        )
        grid = F.affine_grid(theta, [len(x), 3, READ_SIZE, READ_SIZE], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def read_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.crop(x, self.locate(x)))

    def targets(self, scenes: list[dict]) -> torch.Tensor:
        """[N, 3]: each drawing's bloom, (x, y, log radius) as fractions of the frame."""
        return torch.tensor([[s["x"], s["y"], math.log(s["radius"])] for s in scenes])

    def training_loss(
        self, images: torch.Tensor, y: torch.Tensor, targets: torch.Tensor, rng: torch.Generator
    ) -> torch.Tensor:
        x, boxes = self.prepare(images), targets.clone()
        if torch.rand(1, generator=rng) < 0.5:  # a mirrored flower is as real as a drawn one
            x, boxes[:, 0] = x.flip(-1), 1 - boxes[:, 0]
        shift = torch.randn(len(x), 3, generator=rng) * JITTER
        radius = boxes[:, 2:].exp()
        jittered = torch.cat([boxes[:, :2] + shift[:, :2] * radius, boxes[:, 2:] + shift[:, 2:]], 1)
        logits = self.heads(self.features(self.crop(x, jittered)))
        located = F.mse_loss(self.locate(x), boxes)
        return sum(F.cross_entropy(out, y[:, j]) for j, out in enumerate(logits)) + LOCATE_WEIGHT * located
