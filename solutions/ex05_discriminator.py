"""Solution to exercise 5: the DCGAN discriminator, conditioned on the caption.

The same network as the lab's `course-dcgan` discriminator (`plugins/course.py`),
and as `dcgan` at its default settings (`plugins/dcgan.py` adds the variants' options).
"""

from __future__ import annotations

import torch
from torch import nn

from lab.errors import LabError
from lab.interfaces import Discriminator as DiscriminatorInterface
from plugins.course import channel_plan, init_weights, text_projection


class Discriminator(DiscriminatorInterface):
    """Strided convs to 4x4 image features, text projection tiled over 4x4, concat, 4x4 conv -> 1 logit."""

    def __init__(self, text_dim: int = 768, text_proj_dim: int = 256, width: int = 64, image_size: int = 64):
        super().__init__()
        self.text_dim, self.image_size = text_dim, image_size
        plan = channel_plan(width, image_size)[::-1]  # e.g. [64, 128, 256, 512]

        # image_size -> image_size/2 with `width` channels, no BatchNorm on this first stage
        layers = [nn.Conv2d(3, plan[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        # each stage halves the size and doubles the channels, down to 4x4
        for c_in, c_out in zip(plan, plan[1:]):
            layers += [
                nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        self.image_net = nn.Sequential(*layers)
        self.project = text_projection(text_dim, text_proj_dim)
        # image features and tiled text side by side: width*8 + text_proj_dim input channels
        self.head = nn.Conv2d(plan[-1] + text_proj_dim, 1, 4, 1, 0, bias=False)
        self.apply(init_weights)

    def forward(self, image: torch.Tensor, text_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.shape[-2:] != (self.image_size, self.image_size):
            raise LabError(
                f"discriminator expects {self.image_size}x{self.image_size} images, got {tuple(image.shape[-2:])}"
            )
        features = self.image_net(image)  # [N, width*8, 4, 4]
        text = self.project(text_embedding)  # [N, text_proj_dim]
        text = text[:, :, None, None].expand(-1, -1, *features.shape[-2:])  # the same caption at every position
        logits = self.head(torch.cat([features, text], dim=1))  # [N, 1, 1, 1]
        return logits.flatten(), features
