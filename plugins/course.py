"""The course's model, exactly as exercises 4-6 describe it: DCGAN G and D conditioned on a projected
sentence embedding, and the GAN-CLS loss. Registered as generator and discriminator "course-dcgan" and
loss "course-gan-cls".

The lab's "dcgan" and "gan-cls" (plugins/dcgan.py, plugins/gan_cls.py) are these classes plus options
for the variants, each off by default; at their defaults they compute the same thing, which
tests/test_course_model.py checks against these classes and against the solutions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lab.errors import LabError
from lab.interfaces import Discriminator, Generator, LossOutput, LossRecipe
from lab.registry import DISCRIMINATORS, GENERATORS, LOSSES

SUPPORTED_SIZES = (64, 128)


def channel_plan(width: int, image_size: int) -> list[int]:
    """Channels from the 4x4 stage up to the last stage before RGB: [w*8, w*4, w*2, w, (w/2)]."""
    if image_size not in SUPPORTED_SIZES:
        raise LabError(f"image_size must be one of {SUPPORTED_SIZES}, got {image_size}")
    if width < 1:
        raise LabError(f"width must be at least 1, got {width}")
    stages = int(math.log2(image_size // 4))
    return [max(width * 8 // 2**i, 1) for i in range(stages)]


def text_projection(text_dim: int, proj_dim: int) -> nn.Sequential:
    """Linear -> BatchNorm1d -> LeakyReLU(0.2): squeezes e.g. 768-d MPNet vectors to 256."""
    return nn.Sequential(nn.Linear(text_dim, proj_dim), nn.BatchNorm1d(proj_dim), nn.LeakyReLU(0.2, inplace=True))


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def check_image_size(image: torch.Tensor, size: int) -> None:
    """A clear error for images of the wrong size, instead of a crash deep inside a convolution."""
    if image.shape[-1] != size or image.shape[-2] != size:
        raise LabError(f"discriminator expects {size}x{size} images, got {tuple(image.shape[-2:])}")


class CourseGenerator(Generator):
    """noise + projected text -> 1x1 -> 4x4 -> ... -> image_size RGB in [-1, 1] (exercise 4)."""

    def __init__(
        self, text_dim: int = 768, noise_dim: int = 100, text_proj_dim: int = 256, width: int = 64, image_size: int = 64
    ):
        super().__init__()
        plan = channel_plan(width, image_size)  # e.g. [512, 256, 128, 64]
        self.text_dim, self.noise_dim, self.image_size = text_dim, noise_dim, image_size
        self.project = self.text_code(text_dim, text_proj_dim)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(noise_dim + text_proj_dim, plan[0], 4, 1, 0, bias=False),  # 1x1 -> 4x4
            nn.BatchNorm2d(plan[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in zip(plan, plan[1:]):  # each stage doubles the size, halves the channels
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(plan[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.add_layers(plan)
        self.apply(init_weights)  # last: every layer's weights, drawn in the order the layers were built

    # Hooks, each building one piece: the lab's G (plugins/dcgan.py) overrides them to build its options in
    # the places they always had, so that a seed still gives it the same starting weights.

    def text_code(self, text_dim: int, proj_dim: int) -> nn.Module:
        """The text's code, fed to the net beside the noise: its projection."""
        return text_projection(text_dim, proj_dim)

    def add_layers(self, plan: list[int]) -> None:
        """Nothing here in the course; a subclass adds its extra layers (after `net`, before weights are drawn)."""

    def forward(self, noise: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        x = torch.cat([noise, self.project(text_embedding)], dim=1)
        return self.net(x[:, :, None, None])


class CourseDiscriminator(Discriminator):
    """Strided convs to 4x4 image features, text projection tiled over 4x4, concat, 4x4 conv -> 1 logit (exercise 5)."""

    def __init__(self, text_dim: int = 768, text_proj_dim: int = 256, width: int = 64, image_size: int = 64):
        super().__init__()
        self.text_dim, self.image_size = text_dim, image_size
        plan = channel_plan(width, image_size)[::-1]  # e.g. [64, 128, 256, 512]
        layers: list[nn.Module] = [nn.Conv2d(3, plan[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in zip(plan, plan[1:]):  # each stage halves the size, doubles the channels
            layers += self.stage(c_in, c_out)
        self.image_net = nn.Sequential(*layers)
        self.project = self.text_code(text_dim, text_proj_dim)
        self.add_head(plan[-1], text_proj_dim)
        self.apply(init_weights)  # last: every layer's weights, drawn in the order the layers were built

    # Hooks, each building one piece: the lab's D (plugins/dcgan.py) overrides them to build its options in
    # the places they always had, so that a seed still gives it the same starting weights.

    def stage(self, c_in: int, c_out: int) -> list[nn.Module]:
        """One stage: a strided conv (half the size, `c_out` channels) -> BatchNorm -> LeakyReLU."""
        return [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)]

    def text_code(self, text_dim: int, proj_dim: int) -> nn.Module:
        """The text's code, tiled beside the image features: its projection."""
        return text_projection(text_dim, proj_dim)

    def add_head(self, features: int, text_proj_dim: int) -> None:
        """The head: a 4x4 conv from the image features and the tiled text code to one logit."""
        self.head = nn.Conv2d(features + text_proj_dim, 1, 4, 1, 0, bias=False)

    def forward(self, image: torch.Tensor, text_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_image_size(image, self.image_size)
        features = self.image_net(image)  # [N, width*8, 4, 4]
        text = self.project(text_embedding)[:, :, None, None].expand(-1, -1, *features.shape[-2:])
        return self.head(torch.cat([features, text], dim=1)).flatten(), features


class CourseGanClsLoss(LossRecipe):
    """GAN-CLS (Reed et al. 2016) with the tutorial's feature-matching and L1 terms (exercise 6).

    D runs on the real, wrong and fake pairs separately (`LossRecipe`'s default steps)."""

    def __init__(self, feature_weight: float = 100.0, l1_weight: float = 50.0):
        self.feature_weight, self.l1_weight = feature_weight, l1_weight

    def discriminator_loss(
        self, real_logits: torch.Tensor, wrong_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> LossOutput:
        real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        wrong = F.binary_cross_entropy_with_logits(wrong_logits, torch.zeros_like(wrong_logits))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        total = real + wrong + fake
        return LossOutput(total, {"d_real": real.detach(), "d_wrong": wrong.detach(), "d_fake": fake.detach()})

    def generator_loss(
        self,
        fake_logits: torch.Tensor,
        fake_features: torch.Tensor,
        real_features: torch.Tensor,
        fake_images: torch.Tensor,
        real_images: torch.Tensor,
    ) -> LossOutput:
        adversarial = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        feature = F.mse_loss(fake_features.mean(0), real_features.detach().mean(0))
        l1 = self.pixel_loss(fake_images, real_images)
        total = adversarial + self.feature_weight * feature + self.l1_weight * l1
        return LossOutput(total, {"g_adv": adversarial.detach(), "g_feature": feature.detach(), "g_l1": l1.detach()})

    def pixel_loss(self, fake_images: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
        """Mean absolute difference to the real photo of each caption (the lab's gan-cls can forgive pose)."""
        return F.l1_loss(fake_images, real_images.detach())


GENERATORS.register("course-dcgan")(CourseGenerator)
DISCRIMINATORS.register("course-dcgan")(CourseDiscriminator)
LOSSES.register("course-gan-cls")(CourseGanClsLoss)
