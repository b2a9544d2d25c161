"""Where a run stands, as one dataclass: what a checkpoint holds besides weights and optimisers, so that a
resumed run carries on exactly where an uninterrupted one would be.

The RNGs are snapshotted after every completed step: a Ctrl-C in the middle of a step saves the draws as
they were before it, and the resumed run repeats that step exactly."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import torch

from lab.checkpoint import load_state_dict
from lab.train.ema import EMA


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step: int = 0  # steps completed inside the current epoch
    sums: dict[str, float] = field(default_factory=dict)  # each loss term summed over this epoch's steps
    history: list[dict[str, float]] = field(default_factory=list)  # one row of means per completed epoch
    train_seconds: float = 0.0  # time spent in training steps (what `time_limit` counts)
    rng: dict[str, torch.Tensor] = field(default_factory=dict)  # the RNGs after the last completed step

    def to_checkpoint(self, rng_per_rank: list[dict[str, torch.Tensor]]) -> dict:
        return {
            "rng": rng_per_rank,
            "epoch": self.epoch,
            "step": self.step,
            "sums": dict(self.sums),
            "history": list(self.history),
            "train_seconds": self.train_seconds,
        }

    @classmethod
    def from_checkpoint(cls, saved: dict, rank: int) -> TrainState:
        rng = saved["rng"][rank] if rank < len(saved["rng"]) else {}
        return cls(saved["epoch"], saved["step"], saved["sums"], saved["history"], saved["train_seconds"], rng)


class RunRandomness:
    """Every RNG a step draws from: the run's data RNG (batches, wrong images, noise), DiffAugment's, and
    torch's global one (which plugins may use, e.g. conditioning augmentation's sampling)."""

    def __init__(self, seed: int, device: torch.device):
        self.data = torch.Generator().manual_seed(seed)
        self.device = device
        self.augment: torch.Generator | None = None  # set when D is behind DiffAugment

    def states(self) -> dict[str, torch.Tensor]:
        states = {"data": self.data.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        if self.augment is not None:
            states["augment"] = self.augment.get_state()
        return states

    def set_states(self, states: dict[str, torch.Tensor]) -> None:
        self.data.set_state(states["data"])
        torch.set_rng_state(states["torch"])
        if "cuda" in states and self.device.type == "cuda":
            torch.cuda.set_rng_state(states["cuda"], self.device)
        if self.augment is not None:
            saved = states.get("augment")
            if saved is not None and saved.numel() == self.augment.get_state().numel():
                self.augment.set_state(saved)
            else:  # a CUDA generator's state does not fit a CPU one: resumed on another kind of device
                print(
                    "note: DiffAugment's random draws start afresh (saved on another kind of device)", file=sys.stderr
                )


def learner_state(
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    ema: EMA | None,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    scalers: tuple[torch.amp.GradScaler, torch.amp.GradScaler],
) -> dict:
    """What training changes, as a checkpoint holds it: G, D, the EMA of G, G's and D's optimisers, and D's and
    G's fp16 loss scalers ({} each unless fp16)."""
    return {
        "generator": generator.state_dict(),
        "discriminator": discriminator.state_dict(),
        "ema": ema.model.state_dict() if ema is not None else {},
        "ema_updates": ema.updates if ema is not None else 0,
        "opt_g": optimizers[0].state_dict(),
        "opt_d": optimizers[1].state_dict(),
        "scalers": {"d": scalers[0].state_dict(), "g": scalers[1].state_dict()},
    }


def load_learner_state(
    saved: dict,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    ema: EMA | None,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    scalers: tuple[torch.amp.GradScaler, torch.amp.GradScaler],
) -> None:
    """The inverse of `learner_state`; a mismatched checkpoint is one line naming the part."""
    load_state_dict(generator, saved["generator"], "generator checkpoint")
    load_state_dict(discriminator, saved["discriminator"], "discriminator checkpoint")
    if ema is not None:  # a run that kept no EMA before starts its average from G
        load_state_dict(ema.model, saved["ema"] or saved["generator"], "EMA generator checkpoint")
        ema.updates = saved["ema_updates"]
    optimizers[0].load_state_dict(saved["opt_g"])
    optimizers[1].load_state_dict(saved["opt_d"])
    for scaler, state in zip(scalers, (saved.get("scalers", {}).get(k) for k in "dg")):
        if scaler.is_enabled() and state:  # a run trained in another precision starts scaling afresh
            scaler.load_state_dict(state)


def set_learning_rates(optimizers: tuple[torch.optim.Optimizer, ...], rates: tuple[float, ...]) -> None:
    for optimizer, lr in zip(optimizers, rates):
        for group in optimizer.param_groups:
            group["lr"] = lr
