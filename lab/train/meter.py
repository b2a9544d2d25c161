"""The loss meter: reads the steps' loss terms back to the host every `sync_every` steps, not every step.

Every read of a device tensor makes the host wait until the GPU has caught up, so reading each term
every step (`.item()`) would stall the loop as many times; this waits once per `sync_every` steps.
The terms are still checked step by step, so a NaN is reported at the step it appeared, and the epoch's
sums add them in step order as floats, exactly as when each was read at once."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from lab.errors import LabError


class LossMeter:
    def __init__(self) -> None:
        self.pending: list[dict[str, torch.Tensor | float]] = []  # terms of the steps since the last sync
        self.images, self.since = 0, time.perf_counter()  # images since the last sync, and when it was

    def add(self, terms: dict[str, torch.Tensor | float], images: int) -> None:
        self.pending.append(terms)
        self.images += images

    def restart_window(self) -> None:
        self.images, self.since = 0, time.perf_counter()

    def sync(
        self, sums: dict[str, float], step: int, where: Callable[[int], str]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Read the pending terms in one transfer, check them, add them to `sums` (in place).

        `step` is the number of the last pending step; `where(step)` says where a term that is not finite
        appeared and what was kept (called only then, so nothing is looked up on every sync). Returns the last step's terms and each term's mean over the pending steps
        ({} and {} when none is pending)."""
        tensors = [v for terms in self.pending for v in terms.values() if torch.is_tensor(v)]
        values = iter(torch.stack(tensors).tolist() if tensors else [])
        last: dict[str, float] = {}
        window: dict[str, float] = {}
        for n, terms in enumerate(self.pending, step - len(self.pending) + 1):
            last = {k: next(values) if torch.is_tensor(v) else v for k, v in terms.items()}
            bad = [k for k, v in last.items() if not math.isfinite(v)]
            if bad:
                raise LabError(f"loss became {last[bad[0]]} ({', '.join(bad)}) at {where(n)}")
            for k, v in last.items():
                sums[k] = sums.get(k, 0.0) + v
                window[k] = window.get(k, 0.0) + v
        means = {k: v / len(self.pending) for k, v in window.items()}
        self.pending = []
        return last, means

    def images_per_second(self) -> float:
        """Images trained per second since the last call (the live curves' speed); starts a new window."""
        rate = self.images / max(time.perf_counter() - self.since, 1e-9)
        self.restart_window()
        return rate
