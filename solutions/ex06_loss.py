"""Solution to exercise 6: the GAN-CLS loss recipe.

The same recipe as the lab's `course-gan-cls` (`plugins/course.py`), and as
`gan-cls` at its default settings (`plugins/gan_cls.py` adds the variants' options).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lab.interfaces import LossOutput, LossRecipe


class GanClsLoss(LossRecipe):
    def __init__(self, feature_weight: float = 100.0, l1_weight: float = 50.0):
        self.feature_weight, self.l1_weight = feature_weight, l1_weight

    def discriminator_loss(
        self, real_logits: torch.Tensor, wrong_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> LossOutput:
        real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))  # real + caption: 1
        wrong = F.binary_cross_entropy_with_logits(wrong_logits, torch.zeros_like(wrong_logits))  # mismatched: 0
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))  # generated: 0
        total = real + wrong + fake
        return LossOutput(total, {"d_real": real.item(), "d_wrong": wrong.item(), "d_fake": fake.item()})

    def generator_loss(
        self,
        fake_logits: torch.Tensor,
        fake_features: torch.Tensor,
        real_features: torch.Tensor,
        fake_images: torch.Tensor,
        real_images: torch.Tensor,
    ) -> LossOutput:
        adversarial = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))  # fool D
        # real_features are constants: .detach() keeps G's loss from reaching into D's pass on real images
        feature = F.mse_loss(fake_features.mean(0), real_features.detach().mean(0))
        l1 = F.l1_loss(fake_images, real_images)
        total = adversarial + self.feature_weight * feature + self.l1_weight * l1
        return LossOutput(total, {"g_adv": adversarial.item(), "g_feature": feature.item(), "g_l1": l1.item()})
