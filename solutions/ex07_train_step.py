"""Solution to exercise 7: one GAN-CLS training step, D first, then G.

The lab's trainer (`lab/train/`) runs this same step, with loss scaling for
fp16 and the terms left on the GPU until it logs them.
"""

from __future__ import annotations

import torch

from lab.interfaces import LossRecipe


def train_step(
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    recipe: LossRecipe,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    batch: dict,
    noise: torch.Tensor,
) -> dict[str, float]:
    """One D update then one G update; returns the loss terms as floats."""
    real, wrong, embedding = batch["image"], batch["wrong_image"], batch["embedding"]

    # 1. G draws one batch of fakes; its own extra losses (if any) belong to this forward pass.
    fake = generator(noise, embedding)
    extra = dict(getattr(generator, "extra_losses", {}))

    # 2. D step: real, wrong and fake pairs, each judged alone; detach() keeps D's loss out of G.
    d_out = recipe.discriminator_step(discriminator, real, wrong, fake.detach(), embedding)
    opt_d.zero_grad()
    d_out.total.backward()
    opt_d.step()

    # 3. G step: the updated D judges the same fakes; gradients only for G's weights.
    g_out = recipe.generator_step(discriminator, fake, real, embedding)
    g_total = g_out.total + sum(extra.values())
    opt_g.zero_grad()
    g_total.backward(inputs=list(generator.parameters()))
    opt_g.step()

    terms = {"d_loss": d_out.total, "g_loss": g_total, **d_out.terms, **g_out.terms, **extra}
    return {name: value.item() if torch.is_tensor(value) else float(value) for name, value in terms.items()}
