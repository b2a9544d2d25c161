"""Exercise 4: the DCGAN generator, conditioned on the caption.

G turns a random noise vector (which flower: pose, exact shade, ...) and the
caption's embedding (what the flower must look like) into a *new* image:

1. project the text embedding: Linear(text_dim -> text_proj_dim), BatchNorm1d,
   LeakyReLU(0.2) (768 -> 256 for MPNet): a compact, trainable code for the text;
2. concatenate noise and projected text into a [N, noise_dim + text_proj_dim, 1, 1]
   "image" of size 1x1;
3. ConvTranspose2d(kernel 4, stride 1, padding 0) to 4x4 with width*8 channels,
   then ConvTranspose2d(kernel 4, stride 2, padding 1) stages, each doubling
   the size and halving the channels, until the last stage emits 3 channels
   at `image_size`. Every ConvTranspose2d but the last is followed by
   BatchNorm2d + ReLU; the last by Tanh (pixels in [-1, 1]).
   Convolutions use bias=False (BatchNorm has its own shift).

For image_size 64 and width 64 the channels are 512@4x4 -> 256@8x8 -> 128@16x16
-> 64@32x32 -> 3@64x64; for 128 one more stage (32@64x64) is added. The same
`image_size` must drive G, D and the data: the original tutorial's G made
64x64 images while its D expected 128x128.

Given (already imported from `plugins.course`): `text_projection(text_dim, proj_dim)`,
`channel_plan(width, image_size)` (the channel list above; raises LabError for
unsupported sizes) and `init_weights` (DCGAN's N(0, 0.02) init: `self.apply(init_weights)`).

Your class plugs into the real trainer without registering anything:
`lab train --generator=exercises.ex04_generator:Generator`.

Check your work: `lab grade --only ex04`. Reference: `solutions/ex04_generator.py`.
"""

from __future__ import annotations

import torch
from torch import nn  # noqa: F401  (given: use them)

from lab.errors import LabError  # noqa: F401  (given: use them)
from lab.interfaces import Generator as GeneratorInterface
from plugins.course import channel_plan, init_weights, text_projection  # noqa: F401  (given: use them)


class Generator(GeneratorInterface):
    """noise + projected text -> 1x1 -> 4x4 -> ... -> image_size RGB in [-1, 1]."""

    def __init__(
        self, text_dim: int = 768, noise_dim: int = 100, text_proj_dim: int = 256, width: int = 64, image_size: int = 64
    ):
        super().__init__()
        # TODO: store self.text_dim, self.noise_dim, self.image_size; build self.project (the text
        #  projection) and self.net (the ConvTranspose2d stack ending in Tanh); apply init_weights.
        raise NotImplementedError("ex04: Generator.__init__ is not implemented yet")

    def forward(self, noise: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        # TODO: concatenate noise and the projected text, view it as [N, C, 1, 1], run self.net.
        raise NotImplementedError("ex04: Generator.forward is not implemented yet")
