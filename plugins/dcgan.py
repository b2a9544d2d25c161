"""The lab's DCGAN generator and discriminator: the course's (plugins/course.py) plus the variants' options.

Both networks take the same `image_size` (64 or 128), which fixes the original
tutorial's bug of a 64x64 generator feeding a 128x128 discriminator. The
channel plan is shared: the 4x4 end of both stacks has `width * 8` channels,
and each doubling of resolution halves the channels.

Each option is off by default, and then the network is the course's, layer for
layer (tests/test_course_model.py checks it). In G: `cond_aug` (StackGAN
conditioning augmentation), `blur` (a fixed low-pass after the last `blur`
upsamplings) and `skip` (StyleGAN2's skip generator). In D: `norm = "none"` (no
BatchNorm, as DF-GAN's hinge loss with a gradient penalty wants: a penalty per
sample is meaningless when samples share batch statistics), `joint` and
`projection` (two ways to judge whether image and text match) and `blur` (every
image seen through a low-pass). G's first layer is also computed as the matmul
it is (`FromVector`), with the course layer's weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lab.errors import LabError
from lab.registry import DISCRIMINATORS, GENERATORS

from .course import (  # noqa: F401  (channel_plan, init_weights, text_projection: the exercises' helpers)
    CourseDiscriminator,
    CourseGenerator,
    channel_plan,
    check_image_size,
    init_weights,
    text_projection,
)


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

    def __init__(self, in_channels: int, out_channels: int, device: torch.device | None = None):
        super().__init__(in_channels, out_channels, 4, 1, 0, bias=False, device=device)

    @classmethod
    def of(cls, layer: nn.ConvTranspose2d) -> FromVector:
        """The same layer (its very weight) computed as a matmul; draws no random numbers of its own."""
        fast = torch.nn.utils.skip_init(cls, layer.in_channels, layer.out_channels)
        fast.weight = layer.weight
        return fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) @ self.weight.flatten(1)).view(len(x), self.out_channels, 4, 4)


def upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def with_blur(layers: nn.Sequential, blur: int) -> list[nn.Module]:
    """`layers` with a `Blur` after each of the last `blur` upsampling convs (the RGB one included)."""
    upsamplings = [m for m in layers if isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2)]
    blurred = {id(m) for m in upsamplings[len(upsamplings) - blur :]} if blur else set()
    return [x for m in layers for x in ([m, Blur(m.out_channels)] if id(m) in blurred else [m])]


class DCGANGenerator(CourseGenerator):
    """The course's generator (noise + projected text -> 1x1 -> 4x4 -> ... -> RGB in [-1, 1]) with the variants' options.

    The options are built by the course's hooks (`text_code`, `add_layers`), where the lab's G always had them:
    a seed gives the same starting weights as ever, and a run from an old config trains the same."""

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
        upsamplings = len(channel_plan(width, image_size))
        if not 0 <= blur <= upsamplings:
            raise LabError(
                f"generator blur must be between 0 and {upsamplings} (the number of upsamplings to {image_size} px), got {blur}"
            )
        self.cond_aug, self.kl_weight, self.skip = (
            cond_aug,
            kl_weight,
            skip,
        )  # read by the hooks, during super().__init__
        super().__init__(text_dim, noise_dim, text_proj_dim, width, image_size)
        # Neither draws random numbers: the first layer keeps its weight, a blur has none.
        self.net = nn.Sequential(FromVector.of(self.net[0]), *with_blur(self.net[1:], blur))

    def text_code(self, text_dim: int, proj_dim: int) -> nn.Module:
        return text_conditioning(text_dim, proj_dim, self.cond_aug, self.kl_weight)

    def add_layers(self, plan: list[int]) -> None:
        # With `skip` (StyleGAN2's skip generator), every stage also paints RGB through a 1x1 conv, and the
        # image is the sum of all of them, each upsampled bilinearly: colours and layout come smooth from the
        # low-resolution stages (learnt in few steps), the last stage adds only detail.
        self.to_rgb = nn.ModuleList(nn.Conv2d(c, 3, 1) for c in plan) if self.skip else None

    def forward(self, noise: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        if self.to_rgb is None:
            return super().forward(noise, text_embedding)
        x = torch.cat([noise, self.project(text_embedding)], dim=1)[:, :, None, None]
        rgb, taps = None, iter(self.to_rgb)
        for layer in self.net[:-1]:  # up to the last conv, before Tanh
            x = layer(x)
            if isinstance(layer, nn.ReLU):  # the end of a stage
                rgb = next(taps)(x) + (upsample(rgb) if rgb is not None else 0)
        return torch.tanh(x + upsample(rgb))

    @property
    def extra_losses(self) -> dict[str, torch.Tensor]:
        return conditioning_losses(self.project)


class DCGANDiscriminator(CourseDiscriminator):
    """The course's discriminator (strided convs to 4x4 features, text tiled over them, 4x4 conv -> 1 logit)
    with the variants' options.

    The options are built by the course's hooks (`stage`, `text_code`, `add_head`), where the lab's D always
    had them: a seed gives the same starting weights as ever, and a run from an old config trains the same."""

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
        if norm not in ("batch", "none"):
            raise LabError(f"discriminator norm must be 'batch' or 'none', got {norm!r}")
        # Read by the hooks, during super().__init__ (`self.joint` is the joint layer itself).
        self.batch_norm, self.mix_text, self.projection, self.blur = norm == "batch", joint, projection, blur
        super().__init__(text_dim, text_proj_dim, width, image_size)

    def stage(self, c_in: int, c_out: int) -> list[nn.Module]:
        if self.batch_norm:
            return super().stage(c_in, c_out)
        return [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]  # a bias instead of the BatchNorm

    def text_code(self, text_dim: int, proj_dim: int) -> nn.Module:
        if self.batch_norm:
            return super().text_code(text_dim, proj_dim)
        return nn.Sequential(nn.Linear(text_dim, proj_dim), nn.LeakyReLU(0.2, inplace=True))

    def add_head(self, features: int, text_proj_dim: int) -> None:
        # With `joint`, a 3x3 conv + LeakyReLU mixes image and text before the head (as in Reed et al.'s D);
        # without it the logit is a *sum* of an image score and a text score, which cannot tell a
        # matching pair from a mismatched one: only the L1 and feature terms of GAN-CLS then teach the text.
        self.joint: nn.Sequential | None = None
        if self.mix_text:
            self.joint = nn.Sequential(
                TiledTextConv(features, text_proj_dim, features, bias=not self.batch_norm),
                *([nn.BatchNorm2d(features)] if self.batch_norm else []),
                nn.LeakyReLU(0.2, inplace=True),
            )
        super().add_head(features, 0 if self.mix_text else text_proj_dim)  # the text is already in the mix
        # With `projection`, the logit also gets <W e, sum of image features> (Miyato & Koyama 2018):
        # a direct "does this image show what the text says" score per feature channel.
        self.text_match = nn.Linear(self.text_dim, features, bias=False) if self.projection else None
        # With `blur`, D sees every image (real or fake) through the same fixed low-pass: texture finer than
        # that earns G nothing with D, and only the L1 term, which pulls towards smooth real flowers, shapes it.
        self.low_pass = Blur(3) if self.blur else nn.Identity()

    def forward(self, image: torch.Tensor, text_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.joint is None:
            logits, features = super().forward(self.low_pass(image), text_embedding)
        else:
            check_image_size(image, self.image_size)
            features = self.image_net(self.low_pass(image))
            text = self.project(text_embedding)
            logits = self.head(
                self.joint[1:](self.joint[0](features, text))
            ).flatten()  # the conv takes the text beside the map
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
