"""Solution to exercise 4: the DCGAN generator, conditioned on the caption.

The same network as the lab's `course-dcgan` generator (`plugins/course.py`),
and as `dcgan` at its default settings (`plugins/dcgan.py` adds the variants' options).
"""

from __future__ import annotations

import torch
from torch import nn

from lab.interfaces import Generator as GeneratorInterface
from plugins.course import channel_plan, init_weights, text_projection


class Generator(GeneratorInterface):
    """noise + projected text -> 1x1 -> 4x4 -> ... -> image_size RGB in [-1, 1]."""

    def __init__(
        self, text_dim: int = 768, noise_dim: int = 100, text_proj_dim: int = 256, width: int = 64, image_size: int = 64
    ):
        super().__init__()
        plan = channel_plan(width, image_size)  # e.g. [512, 256, 128, 64]; a LabError for other sizes
        self.text_dim, self.noise_dim, self.image_size = text_dim, noise_dim, image_size
        self.project = text_projection(text_dim, text_proj_dim)  # 768 -> 256

        # 1x1 -> 4x4 with width*8 channels
        layers = [nn.ConvTranspose2d(noise_dim + text_proj_dim, plan[0], 4, 1, 0, bias=False)]
        layers += [nn.BatchNorm2d(plan[0]), nn.ReLU(True)]
        # each stage doubles the size and halves the channels
        for c_in, c_out in zip(plan, plan[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        # the last stage paints 3 channels at image_size, squashed into [-1, 1]
        layers += [nn.ConvTranspose2d(plan[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, noise: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        x = torch.cat([noise, self.project(text_embedding)], dim=1)  # [N, noise_dim + text_proj_dim]
        return self.net(x[:, :, None, None])  # as a 1x1 image
