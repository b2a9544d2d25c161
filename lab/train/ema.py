"""An exponential moving average of G's weights, the copy samples and `generator.safetensors` come from.

One small class, like diffusers' `EMAModel`: it averages, it recalibrates its batch-norm statistics,
and it saves and loads its state."""

from __future__ import annotations

import copy

import torch

from lab.device import to_device_async

CALIBRATION_BATCHES = 16  # batches the average's batch-norm statistics are measured on at every save


class EMA:
    """The average of `generator`'s weights over steps, with a warm-up: the decay is (1+n)/(10+n) until it
    reaches `decay`, so a short run's average is not dominated by the random weights it started from."""

    def __init__(self, generator: torch.nn.Module, decay: float, seed: int):
        self.model = copy.deepcopy(generator).eval().requires_grad_(False)
        self.decay, self.seed, self.updates = decay, seed, 0

    @torch.no_grad()
    def update(self, live: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for averaged, weight in zip(self.model.parameters(), live.parameters()):
            averaged.lerp_(weight, 1 - decay)

    @torch.no_grad()
    def recalibrate(self, embeddings: torch.Tensor, batch_size: int, device: torch.device) -> None:
        """Batch-norm statistics measured on the averaged weights (as SWA does), before anything renders with them.

        The live G's running means and variances belong to the live weights; the average's activations
        differ, and borrowing them skews every layer of the average in eval mode. Noise and captions come
        from their own RNG, seeded by the update count, so training draws stay as they were and a resumed
        run recalibrates exactly as an uninterrupted one."""
        norms = [m for m in self.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        rng = torch.Generator().manual_seed(self.seed * 1_000_003 + self.updates)
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches below
        self.model.train()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # G may sample in train mode
            for _ in range(CALIBRATION_BATCHES):
                picks = torch.randint(len(embeddings), (batch_size,), generator=rng)
                noise = torch.randn(batch_size, self.model.noise_dim, generator=rng)
                self.model(to_device_async(noise, device), embeddings[to_device_async(picks, device)])
        self.model.eval()
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
