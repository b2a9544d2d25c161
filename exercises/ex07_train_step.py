"""Exercise 7: one GAN-CLS training step.

Each step first improves D, then G, on one batch (dict with "image",
"wrong_image", "embedding"; see exercise 3) and one noise batch:

1. fake = generator(noise, embedding).
2. D step: `recipe.discriminator_step(discriminator, real, wrong, fake.detach(), embedding)`
   returns a `LossOutput`; zero D's gradients, backward its `total`,
   `opt_d.step()`. `fake.detach()` stops D's loss from pushing gradients into G.
   The recipe's default step (`lab.interfaces.LossRecipe`) runs D on the real,
   wrong and fake pairs *separately*. That matters: D has BatchNorm, so each
   pass is normalised with the statistics of its own batch. One pass over
   `torch.cat([real, wrong, fake])` would normalise the fakes with a mixed
   batch's statistics, and D would judge them differently from the G step,
   where it sees the fakes alone: measured, G then gets almost no signal
   and learns one blurry flower per caption.
3. G step: `recipe.generator_step(discriminator, fake, real, embedding)`: the
   *updated* D judges the fakes (and, for feature matching, the real batch).
   Add G's own extra losses, if it has any: `sum(getattr(generator,
   "extra_losses", {}).values())` read right after step 1's forward pass
   (e.g. the KL term of conditioning augmentation). Zero G's gradients,
   backward with `inputs=list(generator.parameters())` (D's gradients would be
   thrown away: skipping them saves work), `opt_g.step()`.

Return the losses as plain floats: {"d_loss": D total, "g_loss": G total
(extra losses included), **D terms, **G terms, **extra losses}.

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
