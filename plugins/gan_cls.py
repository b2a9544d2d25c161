"""The lab's GAN-CLS: the course's recipe (plugins/course.py, `CourseGanClsLoss`) plus options, each off by default.

D learns three things at once: real image + its caption -> real, real image +
a mismatched caption ("wrong" image) -> fake, generated image -> fake. The
wrong pair is what forces D, and so G, to care about the text.

The L1 term pulls every fake towards *the* real photo of its caption, whose
pose G cannot know: the best it can do is the average pose, so it learns to
ignore its noise. `l1_pool = k` compares k x k block averages instead: the
colours and where they sit still teach G quickly, while the pose inside each
block (rotation, petal positions) is left to the adversarial game.
`l1_rotations = k` keeps full resolution but forgives the pose instead: each
fake is compared with the real photo turned by 0, 360/k, 2 x 360/k, ... degrees
and only the closest turn counts. Against one fixed pose, every pixel that a
petal covers in fewer than half of the poses is cheaper painted as background,
so plain L1 teaches thin, faint petals that nobody can count; aligned, it
teaches their size and shape at full resolution (on the main job: petal count
read right 53% -> 78%, shape 89% -> 93%, README).

`matching = w` adds an in-batch matching term (XMC-GAN's image-sentence
contrastive loss) to both players: D must pick each image's caption out of
every caption in the batch, and G's fakes must be picked out the same way.
One random wrong image per pair mostly differs in colour, so D can reject it
by colour alone and never learns petal count or shape; on the synthetic
flowers a batch of 32 holds one or two captions per row that differ from the
right one only in those, and the softmax weighs the hardest rows most. It needs
a discriminator with `match_scores` (dcgan with `projection = true`). Two
captions of one flower in a batch count as a mismatch: with 461 training
flowers that is about one pair per batch of 32, a little label noise.

`real_label`, `wrong_weight` and `fake_weight` give Reed et al.'s own D loss:
real pairs + 0.5 x wrong pairs + 0.5 x fakes (`wrong_weight = fake_weight = 0.5`),
and one-sided label smoothing (`real_label = 0.9`: D's target for real pairs,
never for fakes, so D cannot grow overconfident on the real photos while the
fakes' targets stay where G must move them). The course counts wrong and fake
pairs fully and uses hard labels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lab.errors import LabError
from lab.interfaces import Discriminator, LossOutput
from lab.registry import LOSSES

from .course import CourseGanClsLoss


def rotations(images: torch.Tensor, k: int) -> torch.Tensor:
    """[k, N, C, H, W]: the images turned by 0, 360/k, ... degrees about their centre (bilinear, reflected at
    the border, so a turned photo has no empty corners)."""
    angles = torch.arange(k, device=images.device, dtype=images.dtype) * (2 * math.pi / k)
    cos, sin, zero = angles.cos(), angles.sin(), torch.zeros_like(angles)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # [k, 2, 3]
    n = len(images)
    grid = F.affine_grid(theta.repeat_interleave(n, 0), [k * n, *images.shape[1:]], align_corners=False)
    turned = F.grid_sample(
        images.repeat(k, 1, 1, 1), grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    return turned.view(k, *images.shape)


def matching_loss(
    discriminator: Discriminator, features: torch.Tensor, embedding: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Cross-entropy of picking each image's own caption among the batch's, and each caption's image."""
    scores = discriminator.match_scores(features, embedding) / temperature
    target = torch.arange(len(scores), device=scores.device)
    return (F.cross_entropy(scores, target) + F.cross_entropy(scores.T, target)) / 2


class GanClsLoss(CourseGanClsLoss):
    """The course's GAN-CLS, with a pixel loss that can forgive pose (`l1_pool`, `l1_rotations`) and an
    in-batch matching term (`matching`)."""

    def __init__(
        self,
        feature_weight: float = 100.0,
        l1_weight: float = 50.0,
        l1_pool: int = 1,
        l1_rotations: int = 1,
        matching: float = 0.0,
        temperature: float = 0.1,
        real_label: float = 1.0,
        wrong_weight: float = 1.0,
        fake_weight: float = 1.0,
    ):
        super().__init__(feature_weight, l1_weight)
        if not 0.5 < real_label <= 1.0 or wrong_weight < 0 or fake_weight <= 0:
            raise LabError(
                "gan-cls needs 0.5 < real_label <= 1, wrong_weight >= 0 and fake_weight > 0, got "
                f"real_label={real_label}, wrong_weight={wrong_weight}, fake_weight={fake_weight}"
            )
        self.real_label, self.wrong_weight, self.fake_weight = real_label, wrong_weight, fake_weight
        if temperature <= 0 or matching < 0:
            raise LabError(
                f"gan-cls needs matching >= 0 and temperature > 0, got matching={matching}, temperature={temperature}"
            )
        if l1_rotations < 1:
            raise LabError(f"gan-cls needs l1_rotations >= 1 (1 = the photo's own pose only), got {l1_rotations}")
        self.l1_pool, self.l1_rotations = l1_pool, l1_rotations
        self.matching, self.temperature = matching, temperature

    def discriminator_loss(
        self, real_logits: torch.Tensor, wrong_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> LossOutput:
        """The course's D loss with a smoothed real label and weighted wrong / fake terms (the course's at 1, 1, 1)."""
        real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, self.real_label))
        wrong = F.binary_cross_entropy_with_logits(wrong_logits, torch.zeros_like(wrong_logits))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        total = real + self.wrong_weight * wrong + self.fake_weight * fake
        return LossOutput(total, {"d_real": real.detach(), "d_wrong": wrong.detach(), "d_fake": fake.detach()})

    def discriminator_step(
        self,
        discriminator: Discriminator,
        real: torch.Tensor,
        wrong: torch.Tensor,
        fake: torch.Tensor,
        embedding: torch.Tensor,
    ) -> LossOutput:
        real_logits, real_features, wrong_logits, fake_logits = self.judge_pairs(
            discriminator, real, wrong, fake, embedding
        )
        out = self.discriminator_loss(real_logits, wrong_logits, fake_logits)
        return self._with_matching(out, discriminator, real_features, embedding, "d_match")

    def generator_step(
        self, discriminator: Discriminator, fake: torch.Tensor, real: torch.Tensor, embedding: torch.Tensor
    ) -> LossOutput:
        fake_logits, fake_features, real_features = self.judge_fakes(discriminator, fake, real, embedding)
        out = self.generator_loss(fake_logits, fake_features, real_features, fake, real)
        return self._with_matching(out, discriminator, fake_features, embedding, "g_match")

    def _with_matching(
        self, out: LossOutput, discriminator: Discriminator, features: torch.Tensor, embedding: torch.Tensor, name: str
    ) -> LossOutput:
        if not self.matching:
            return out
        match = self.matching * matching_loss(discriminator, features, embedding, self.temperature)
        return LossOutput(out.total + match, {**out.terms, name: match.detach()})

    def pixel_loss(self, fake_images: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
        """L1 to the real photo, as k x k block averages (`l1_pool`) and to its closest turn (`l1_rotations`)."""
        targets = (
            rotations(real_images.detach(), self.l1_rotations) if self.l1_rotations > 1 else real_images.detach()[None]
        )
        if self.l1_pool > 1:
            fake_images = F.avg_pool2d(fake_images, self.l1_pool)
            targets = F.avg_pool2d(targets.flatten(0, 1), self.l1_pool).view(len(targets), *fake_images.shape)
        return (
            (fake_images[None] - targets).abs().mean((2, 3, 4)).min(0).values.mean()
        )  # the closest turn of each photo


LOSSES.register("gan-cls")(GanClsLoss)
