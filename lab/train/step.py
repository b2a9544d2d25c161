"""One training step as the course teaches it: a discriminator update, then a generator update.

The loss recipe decides which pairs D judges. Against the original tutorial the lab fixes: wrong
images really are fed to D, and G is judged by the D that was just updated.
"""

from __future__ import annotations

import torch

from lab.parts.interfaces import LossRecipe

NO_SCALING = torch.amp.GradScaler("cpu", enabled=False)  # bf16 and fp32: a disabled scaler is a plain backward


def backward_and_step(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, **backward
) -> None:
    """`loss.backward(); optimizer.step()`, through fp16's loss scaler when it is on.

    fp16 gradients underflow to 0 below ~6e-8: the scaler multiplies the loss (so every gradient) by a large
    factor, divides it out before the step, skips steps whose gradients overflowed and adapts the factor.
    Disabled (bf16, fp32) it is exactly the plain backward and step."""
    scaler.scale(loss).backward(**backward)
    scaler.step(optimizer)
    scaler.update()


def train_step(
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    recipe: LossRecipe,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    batch: dict,
    noise: torch.Tensor,
    scalers: tuple[torch.amp.GradScaler, torch.amp.GradScaler] = (NO_SCALING, NO_SCALING),
) -> dict[str, torch.Tensor | float]:
    """One D update then one G update; returns the loss terms, detached: 0-d tensors on the device (floats where
    the recipe gave floats), so the step never makes the host wait for the GPU (see `LossMeter`).
    `scalers` are D's and G's fp16 loss scalers (one per player: each loss has its own range).

    The recipe runs D: by default on real, wrong and fake pairs *separately*,
    so with BatchNorm each group is normalised by its own statistics, the
    same way the G step sees the fakes. G's own extra losses (e.g. the KL
    term of conditioning augmentation) are added to its loss.
    """
    real, wrong, emb = batch["image"], batch["wrong_image"], batch["embedding"]
    fake = generator(noise, emb)
    extra = dict(getattr(generator, "extra_losses", {}))  # taken now: they belong to this forward pass

    d_out = recipe.discriminator_step(discriminator, real, wrong, fake.detach(), emb)
    opt_d.zero_grad(set_to_none=True)
    backward_and_step(d_out.total, opt_d, scalers[0])

    # G: judged by the updated D. Gradients are computed for G's weights only (`inputs=`): D's
    # would be thrown away, and skipping them saves about a third of this backward pass.
    g_out = recipe.generator_step(discriminator, fake, real, emb)
    g_total = g_out.total + sum(extra.values())
    opt_g.zero_grad(set_to_none=True)
    backward_and_step(g_total, opt_g, scalers[1], inputs=[p for p in generator.parameters() if p.requires_grad])
    terms = {"d_loss": d_out.total, "g_loss": g_total, **d_out.terms, **g_out.terms, **extra}
    return {k: v.detach() if torch.is_tensor(v) else v for k, v in terms.items()}  # kept a while: no graphs
