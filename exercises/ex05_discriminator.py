"""Exercise 5: the DCGAN discriminator, conditioned on the caption.

D answers "is this a real image *of this caption*?". It looks at the image and
the text separately, then together:

1. image: strided Conv2d(kernel 4, stride 2, padding 1) stages halve the size
   until 4x4: 3 -> width (LeakyReLU 0.2, no BatchNorm on the first stage),
   then doubling channels with BatchNorm2d + LeakyReLU(0.2), ending with
   width*8 channels at 4x4. These 4x4 maps are the image *features*;
2. text: the same kind of projection as G (Linear, BatchNorm1d, LeakyReLU 0.2)
   to text_proj_dim numbers, *replicated* over the 4x4 grid so every spatial
   position sees the whole caption: [N, text_proj_dim] -> [N, text_proj_dim, 4, 4];
3. concatenate along channels -> [N, width*8 + text_proj_dim, 4, 4] and a final
   Conv2d(kernel 4, stride 1, padding 0) -> one logit per image. Name this layer
   `self.head`. At this class's defaults (width 64, text_proj_dim 256) it takes
   512 + 256 = 768 input channels; quiz question 7 asks the same of the course's
   network, whose width is 64 and whose text is projected to 64 numbers.

`forward` returns (logits [N], features [N, width*8, 4, 4]); the features feed
the generator's feature-matching loss. Images of the wrong size must raise
`lab.errors.LabError` with a clear message (the original tutorial's G/D size
mismatch crashed deep inside a convolution instead).

Given (already imported from `plugins.course`): `text_projection`, `channel_plan` (reverse
it for D: e.g. [w, w*2, w*4, w*8]) and `init_weights`. Convolutions use bias=False.

Plugs into the trainer: `lab train --discriminator=exercises.ex05_discriminator:Discriminator`.

Check your work: `lab grade --only ex05`. Reference: `solutions/ex05_discriminator.py`.
"""

from __future__ import annotations

import torch
from torch import nn  # noqa: F401  (given: use them)

from lab.errors import LabError  # noqa: F401  (given: use them)
from lab.interfaces import Discriminator as DiscriminatorInterface
from plugins.course import channel_plan, init_weights, text_projection  # noqa: F401  (given: use them)


class Discriminator(DiscriminatorInterface):
    """Strided convs to 4x4 image features, text projection tiled over 4x4, concat, 4x4 conv -> 1 logit."""

    def __init__(self, text_dim: int = 768, text_proj_dim: int = 256, width: int = 64, image_size: int = 64):
        super().__init__()
        # TODO: store self.text_dim, self.image_size; build self.image_net (the conv stack),
        #  self.project (text projection) and self.head (the final 4x4 conv); apply init_weights.
        raise NotImplementedError("ex05: Discriminator.__init__ is not implemented yet")

    def forward(self, image: torch.Tensor, text_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # TODO: check the image size (LabError), compute the features, replicate the projected text
        #  over their 4x4 grid, concatenate, apply self.head; return (logits flattened to [N], features).
        raise NotImplementedError("ex05: Discriminator.forward is not implemented yet")
