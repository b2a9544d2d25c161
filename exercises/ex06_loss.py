"""Exercise 6: the GAN-CLS loss recipe.

D's logits are turned into probabilities by a sigmoid, so every "real/fake"
decision is scored with binary cross-entropy on logits
(`torch.nn.functional.binary_cross_entropy_with_logits`, mean over the batch):

- D loss = BCE(real_logits, 1) + BCE(wrong_logits, 0) + BCE(fake_logits, 0).
  The middle term is the "CLS" of GAN-CLS: a real image with a mismatched
  caption must be called fake, so D, and through it G, must read the text.
- G loss = BCE(fake_logits, 1)                        (fool D)
         + feature_weight * MSE(mean over the batch of fake_features,
                                mean over the batch of real_features)   (feature matching)
         + l1_weight * L1(fake_images, real_images)   (stay close to the real photo)
  with feature_weight 100 and l1_weight 50 by default. The real features come
  from D's pass in the D step and are constants here: no gradient may flow into them.

Each method returns `lab.interfaces.LossOutput(total, terms)`: `total` is the
tensor to backpropagate, `terms` the float value of each part for logging,
named "d_real", "d_wrong", "d_fake" and "g_adv", "g_feature", "g_l1".

Plugs into the trainer: `lab train --loss=exercises.ex06_loss:GanClsLoss`.

Check your work: `lab grade --only ex06`. Reference: `solutions/ex06_loss.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401  (given: use them)

from lab.interfaces import LossOutput, LossRecipe


class GanClsLoss(LossRecipe):
    def __init__(self, feature_weight: float = 100.0, l1_weight: float = 50.0):
        # TODO: keep the two weights.
        raise NotImplementedError("ex06: GanClsLoss.__init__ is not implemented yet")

    def discriminator_loss(
        self, real_logits: torch.Tensor, wrong_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> LossOutput:
        # TODO: the three BCE terms, their sum as total, terms d_real / d_wrong / d_fake.
        raise NotImplementedError("ex06: GanClsLoss.discriminator_loss is not implemented yet")

    def generator_loss(
        self,
        fake_logits: torch.Tensor,
        fake_features: torch.Tensor,
        real_features: torch.Tensor,
        fake_images: torch.Tensor,
        real_images: torch.Tensor,
    ) -> LossOutput:
        # TODO: adversarial + weighted feature-matching + weighted L1; terms g_adv / g_feature / g_l1.
        raise NotImplementedError("ex06: GanClsLoss.generator_loss is not implemented yet")
