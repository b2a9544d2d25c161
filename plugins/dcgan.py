"""DCGAN generator and discriminator conditioned on a projected sentence embedding.

Both networks take the same `image_size` (64 or 128), which fixes the original
tutorial's bug of a 64x64 generator feeding a 128x128 discriminator. The
channel plan is shared: the 4x4 end of both stacks has `width * 8` channels,
and each doubling of resolution halves the channels.

Options the variants need, each off by default so the course's model stays
the tutorial's. In G: `cond_aug` (StackGAN conditioning augmentation), `blur`
(a fixed low-pass after the last `blur` upsamplings) and `skip` (StyleGAN2's
skip generator). In D: `norm = "none"` (no BatchNorm, as DF-GAN's hinge loss
with a gradient penalty wants: a penalty per sample is meaningless when samples
share batch statistics), `joint` and `projection` (two ways to judge whether
image and text match) and `blur` (every image seen through a low-pass).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lab.errors import LabError
from lab.interfaces import Discriminator, Generator
from lab.registry import DISCRIMINATORS, GENERATORS

SUPPORTED_SIZES = (64, 128)


def channel_plan(width: int, image_size: int) -> list[int]:
    """Channels from the 4x4 stage up to the last stage before RGB: [w*8, w*4, w*2, w, (w/2)]."""
    if image_size not in SUPPORTED_SIZES:
        raise LabError(f"image_size must be one of {SUPPORTED_SIZES}, got {image_size}")
    if width < 1:
        raise LabError(f"width must be at least 1, got {width}")
    stages = int(math.log2(image_size // 4))
    return [max(width * 8 // 2**i, 1) for i in range(stages)]


def text_projection(text_dim: int, proj_dim: int, norm: bool = True) -> nn.Sequential:
    """Linear -> BatchNorm1d -> LeakyReLU(0.2): squeezes e.g. 768-d MPNet vectors to 256."""
    layers = [nn.Linear(text_dim, proj_dim), nn.BatchNorm1d(proj_dim)] if norm else [nn.Linear(text_dim, proj_dim)]
    return nn.Sequential(*layers, nn.LeakyReLU(0.2, inplace=True))


class ConditioningAugmentation(nn.Module):
    """StackGAN's conditioning augmentation: the text code is *sampled* from N(mu, sigma^2) given the embedding.

    Ten captions of one flower are ten points; sampling around each smooths the
    text manifold G learns from, and the KL term (weight `kl_weight`, 2.0 in
    StackGAN) keeps the distribution near N(0, I). At inference (eval mode) the
    mean is used, so a seed always gives the same image.
    """

    def __init__(self, text_dim: int, proj_dim: int, kl_weight: float = 2.0):
        super().__init__()
        self.fc = nn.Linear(text_dim, proj_dim * 2)
        self.kl_weight = kl_weight
        self.kl = torch.zeros(())

    def forward(self, text_embedding: torch.Tensor) -> torch.Tensor:
        mu, logvar = F.leaky_relu(self.fc(text_embedding), 0.2).chunk(2, dim=1)
        self.kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp()


def text_conditioning(text_dim: int, proj_dim: int, cond_aug: bool, kl_weight: float) -> nn.Module:
    """G's text code: the plain projection, or a sampled one (conditioning augmentation)."""
    return ConditioningAugmentation(text_dim, proj_dim, kl_weight) if cond_aug else text_projection(text_dim, proj_dim)


def conditioning_losses(project: nn.Module) -> dict[str, torch.Tensor]:
    """The KL term of conditioning augmentation, weighted, when G uses it and is training."""
    if isinstance(project, ConditioningAugmentation) and project.training:
        return {"g_kl": project.kl_weight * project.kl}
    return {}


class Blur(nn.Module):
    """A fixed [1, 2, 1] x [1, 2, 1] / 16 low-pass per channel (StyleGAN's anti-aliasing filter).

    A stride-2 4x4 transposed conv paints a checkerboard (each output pixel of a 2x2 cell sums a
    different subset of kernel taps), and a young G paints speckle. Real flowers are drawn at twice
    the size and downsampled, so they have neither, and Inception features notice: blurring a trained
    G's images after the fact lowered FID from 217 to 160 on the synthetic flowers. On G's output and
    on everything D sees, it takes that texture out of the game (README, Benchmarks, has the numbers).
    """

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer(
            "kernel", (k[:, None] * k[None] / 16).expand(channels, 1, 3, 3).contiguous(), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.kernel, groups=x.shape[1])


def _valid_taps(n: int, device: torch.device) -> torch.Tensor:
    """[n, 3]: 1 where tap k of a padded 3-wide kernel lands inside a length-n axis at position y."""
    y, k = torch.arange(n, device=device)[:, None], torch.arange(3, device=device)[None]
    return ((y + k - 1 >= 0) & (y + k - 1 < n)).float()


class TiledTextConv(nn.Conv2d):
    """A 3x3 conv over cat([image features, text vector tiled over the map]), without tiling the text.

    The text half of the input is the same at every position, so what it adds at a position is the sum
    of `W_k t` over the kernel taps k that land inside the map (zero padding drops the others). That is
    one small matmul per tap instead of a convolution over half the input channels: the same numbers
    for half the work of D's most expensive layer. Weights are laid out as the plain conv's."""

    def __init__(self, image_channels: int, text_channels: int, out_channels: int, bias: bool):
        super().__init__(image_channels + text_channels, out_channels, 3, 1, 1, bias=bias)
        self.image_channels = image_channels

    def forward(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        w_image, w_text = self.weight.split([self.image_channels, self.in_channels - self.image_channels], dim=1)
        taps = torch.einsum("oikl,bi->bokl", w_text, text)
        h, w = features.shape[-2:]
        tiled = torch.einsum("bokl,yk,xl->boyx", taps, _valid_taps(h, text.device), _valid_taps(w, text.device))
        return F.conv2d(features, w_image, self.bias, padding=1) + tiled


class FromVector(nn.ConvTranspose2d):
    """G's first layer: a 4x4 transposed conv from a 1x1 input, computed as the matmul it is.

    On a 1x1 input each output pixel is one kernel tap times the input vector, so the layer is `x @ W`
    with W seen as [in, out * 16]. oneDNN runs the transposed conv's backward several times slower than
    that matmul (`benchmarks/layers.py`). Weights and state-dict keys are the plain layer's."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 4, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) @ self.weight.flatten(1)).view(len(x), self.out_channels, 4, 4)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class DCGANGenerator(Generator):
    """noise (100) + projected text (256) -> 1x1 -> 4x4 -> ... -> image_size RGB in [-1, 1]."""

    def __init__(
        self,
        text_dim: int = 768,
        noise_dim: int = 100,
        text_proj_dim: int = 256,
        width: int = 64,
        image_size: int = 64,
        cond_aug: bool = False,
        kl_weight: float = 2.0,
        blur: int = 0,
        skip: bool = False,
    ):
        super().__init__()
        plan = channel_plan(width, image_size)
        if not 0 <= blur <= len(plan):
            raise LabError(
                f"generator blur must be between 0 and {len(plan)} (the number of upsamplings to {image_size} px), got {blur}"
            )
        self.text_dim, self.noise_dim, self.image_size = text_dim, noise_dim, image_size
        self.project = text_conditioning(text_dim, text_proj_dim, cond_aug, kl_weight)
        layers: list[nn.Module] = [
            FromVector(noise_dim + text_proj_dim, plan[0]),
            nn.BatchNorm2d(plan[0]),
            nn.ReLU(True),
        ]
        for i, (c_in, c_out) in enumerate(zip(plan, plan[1:])):  # upsampling i + 1 of len(plan)
            low_pass = [Blur(c_out)] if i + 1 > len(plan) - blur else []
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                *low_pass,
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(plan[-1], 3, 4, 2, 1, bias=False), *([Blur(3)] if blur else []), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        # With `skip` (StyleGAN2's skip generator), every stage also paints RGB through a 1x1 conv, and the
        # image is the sum of all of them, each upsampled bilinearly: colours and layout come smooth from the
        # low-resolution stages (learnt in few steps), the last stage adds only detail.
        self.to_rgb = nn.ModuleList(nn.Conv2d(c, 3, 1) for c in plan) if skip else None
        self.apply(init_weights)

    def forward(self, noise: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        x = torch.cat([noise, self.project(text_embedding)], dim=1)[:, :, None, None]
        if self.to_rgb is None:
            return self.net(x)
        rgb, taps = None, iter(self.to_rgb)
        for layer in self.net[:-1]:  # up to the last conv, before Tanh
            x = layer(x)
            if isinstance(layer, nn.ReLU):  # the end of a stage
                rgb = next(taps)(x) + (upsample(rgb) if rgb is not None else 0)
        return torch.tanh(x + upsample(rgb))

    @property
    def extra_losses(self) -> dict[str, torch.Tensor]:
        return conditioning_losses(self.project)


class DCGANDiscriminator(Discriminator):
    """Strided convs to 4x4 image features, text projection tiled over 4x4, concat, 4x4 conv -> 1 logit."""

    def __init__(
        self,
        text_dim: int = 768,
        text_proj_dim: int = 256,
        width: int = 64,
        image_size: int = 64,
        norm: str = "batch",
        joint: bool = False,
        projection: bool = False,
        blur: bool = False,
    ):
        super().__init__()
        if norm not in ("batch", "none"):
            raise LabError(f"discriminator norm must be 'batch' or 'none', got {norm!r}")
        self.text_dim, self.image_size = text_dim, image_size
        plan = channel_plan(width, image_size)[::-1]  # e.g. [w, w*2, w*4, w*8]
        batch_norm = norm == "batch"
        layers: list[nn.Module] = [nn.Conv2d(3, plan[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(plan, plan[1:]):
            layers += [
                nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batch_norm),
                *([nn.BatchNorm2d(c_out)] if batch_norm else []),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        self.image_net = nn.Sequential(*layers)
        self.project = text_projection(text_dim, text_proj_dim, norm=batch_norm)
        # With `joint`, a 3x3 conv + LeakyReLU mixes image and text before the head (as in Reed et al.'s D);
        # without it the logit is a *sum* of an image score and a text score, which cannot tell a
        # matching pair from a mismatched one: only the L1 and feature terms of GAN-CLS then teach the text.
        self.joint: nn.Sequential | None = None
        head_in = plan[-1] + text_proj_dim
        if joint:
            self.joint = nn.Sequential(
                TiledTextConv(plan[-1], text_proj_dim, plan[-1], bias=not batch_norm),
                *([nn.BatchNorm2d(plan[-1])] if batch_norm else []),
                nn.LeakyReLU(0.2, inplace=True),
            )
            head_in = plan[-1]
        self.head = nn.Conv2d(head_in, 1, 4, 1, 0, bias=False)
        # With `projection`, the logit also gets <W e, sum of image features> (Miyato & Koyama 2018):
        # a direct "does this image show what the text says" score per feature channel.
        self.text_match = nn.Linear(text_dim, plan[-1], bias=False) if projection else None
        # With `blur`, D sees every image (real or fake) through the same fixed low-pass: texture finer than
        # that earns G nothing with D, and only the L1 term, which pulls towards smooth real flowers, shapes it.
        self.low_pass = Blur(3) if blur else nn.Identity()
        self.apply(init_weights)

    def forward(self, image: torch.Tensor, text_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.shape[-1] != self.image_size or image.shape[-2] != self.image_size:
            raise LabError(
                f"discriminator expects {self.image_size}x{self.image_size} images, got {tuple(image.shape[-2:])}"
            )
        features = self.image_net(self.low_pass(image))
        text = self.project(text_embedding)
        if self.joint is not None:
            logits = self.head(
                self.joint[1:](self.joint[0](features, text))
            ).flatten()  # the conv takes the text beside the map
        else:
            logits = self.head(
                torch.cat([features, text[:, :, None, None].expand(-1, -1, *features.shape[-2:])], dim=1)
            ).flatten()
        if self.text_match is not None:
            logits = logits + (self.text_match(text_embedding) * features.sum((2, 3))).sum(1)
        return logits, features

    def match_scores(self, features: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """Cosine of every image's summed features with every caption's projection (`W e`, the
        projection term's map): scale-free, so a matching loss on it shapes directions, not the logit."""
        if self.text_match is None:
            raise LabError(
                "scoring every image-caption pairing needs the discriminator's projection head: set projection = true in [discriminator]"
            )
        images = F.normalize(features.sum((2, 3)), dim=1)
        return images @ F.normalize(self.text_match(text_embedding), dim=1).T


GENERATORS.register("dcgan")(DCGANGenerator)
DISCRIMINATORS.register("dcgan")(DCGANDiscriminator)
