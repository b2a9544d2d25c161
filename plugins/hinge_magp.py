"""DF-GAN's loss (Tao et al. 2022): hinge loss plus the matching-aware gradient penalty (MA-GP).

D: relu(1 - D(x, e)) + 1/2 [relu(1 + D(G(z), e)) + relu(1 + D(x_wrong, e))] + MA-GP,
MA-GP = weight * mean(||grad_(x, e) D(x, e)||^power) on real, matching pairs.
G: -mean D(G(z), e).

The penalty smooths D around real *matching* pairs, in both the image and the
sentence embedding, so G gets useful gradients towards text-matching images
without feature matching or an L1 pull to one real photo (which is what makes
GAN-CLS ignore its noise). The penalty is taken per sample, so D must not mix
samples: use it with a discriminator without BatchNorm (`norm = "none"`), and
DF-GAN's Adam settings (betas (0.0, 0.9), lr 1e-4 for G, 4e-4 for D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lab.interfaces import Discriminator, LossOutput, LossRecipe
from lab.registry import LOSSES


class HingeMAGP(LossRecipe):
    def __init__(self, gp_weight: float = 2.0, gp_power: float = 6.0):
        self.gp_weight, self.gp_power = gp_weight, gp_power

    def discriminator_step(
        self,
        discriminator: Discriminator,
        real: torch.Tensor,
        wrong: torch.Tensor,
        fake: torch.Tensor,
        embedding: torch.Tensor,
    ) -> LossOutput:
        real, embedding = real.detach().requires_grad_(), embedding.detach().requires_grad_()
        real_logits, _, wrong_logits, fake_logits = self.judge_pairs(discriminator, real, wrong, fake, embedding)
        out = self.discriminator_loss(real_logits, wrong_logits, fake_logits)
        grads = torch.autograd.grad(real_logits.sum(), (real, embedding), create_graph=True)
        norm = torch.cat([g.flatten(1) for g in grads], dim=1).norm(dim=1)
        penalty = self.gp_weight * norm.pow(self.gp_power).mean()
        return LossOutput(out.total + penalty, {**out.terms, "d_gp": penalty.detach()})

    def generator_step(
        self, discriminator: Discriminator, fake: torch.Tensor, real: torch.Tensor, embedding: torch.Tensor
    ) -> LossOutput:
        fake_logits, fake_features = discriminator(fake, embedding)
        return self.generator_loss(fake_logits, fake_features, fake_features, fake, real)

    def discriminator_loss(
        self, real_logits: torch.Tensor, wrong_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> LossOutput:
        real = F.relu(1 - real_logits).mean()
        wrong = F.relu(1 + wrong_logits).mean()
        fake = F.relu(1 + fake_logits).mean()
        total = real + (wrong + fake) / 2
        return LossOutput(total, {"d_real": real.detach(), "d_wrong": wrong.detach(), "d_fake": fake.detach()})

    def generator_loss(
        self,
        fake_logits: torch.Tensor,
        fake_features: torch.Tensor,
        real_features: torch.Tensor,
        fake_images: torch.Tensor,
        real_images: torch.Tensor,
    ) -> LossOutput:
        adversarial = -fake_logits.mean()
        return LossOutput(adversarial, {"g_adv": adversarial.detach()})


LOSSES.register("hinge-magp")(HingeMAGP)
