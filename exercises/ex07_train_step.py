"""Exercise 7: one GAN-CLS training step.

Each step first improves D, then G, on one batch (dict with "image",
"wrong_image", "embedding"; see exercise 3) and one noise batch:

1. fake = generator(noise, embedding).
2. D step: *one* discriminator forward over torch.cat([real, wrong, fake.detach()])
   with the embedding repeated three times (torch.cat([emb, emb, emb])); split
   the logits into real / wrong / fake thirds (`.chunk(3)`), keep the real third of the
   features, detached, for G's feature matching. `recipe.discriminator_loss`,
   zero D's gradients, backward, `opt_d.step()`. `fake.detach()` stops D's
   loss from pushing gradients into G.
3. G step: run the *updated* D on (fake, embedding) only, then
   `recipe.generator_loss(fake_logits, fake_features, real_features, fake, real)`,
   zero G's gradients, backward, `opt_g.step()`.

The original tutorial ran D on the real images a second time in the G step;
reusing the real features from step 2 gives the same numbers for less work.
So D runs exactly twice per step: on 3N images, then on N.

Return the losses as plain floats: {"d_loss": D total, "g_loss": G total,
**D terms, **G terms}.

Check your work: `lab grade --only ex07`. Reference: `solutions/ex07_train_step.py`.
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
    # TODO: steps 1-3 above.
    raise NotImplementedError("ex07: train_step is not implemented yet")
