"""Data-parallel training under `torchrun`: where this process sits, and the few collectives the trainer needs.

Gradients are averaged by an optimiser pre-step hook instead of wrapping the models in DDP, so
`train_step` and the loss recipes see plain modules, and the G step can run D without DDP waiting
for D gradients that are never produced. Run plainly, this is rank 0 of 1 and every call is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from lab.device import resolve_device

T = TypeVar("T")


@dataclass
class Distributed:
    """Where this process sits in a `torchrun` job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def main_first(self, build: Callable[[bool], T]) -> T:
        """`build(is_main)` on rank 0 first (it fills the caches), then on the other ranks (they read them)."""
        if self.main:
            built = build(True)
        self.barrier()
        if not self.main:
            built = build(False)
        return built

    def average_gradients_before_step(self, optimizer: torch.optim.Optimizer, module: torch.nn.Module) -> None:
        """Every step of `optimizer` first averages `module`'s gradients over the ranks."""
        if self.world > 1:
            params = list(module.parameters())
            optimizer.register_step_pre_hook(lambda *_: average_gradients(params))

    def from_main(self, value: float) -> float:
        """Rank 0's value on every rank (on this rank's device: NCCL only moves CUDA tensors)."""
        if self.world == 1:
            return value
        flag = torch.tensor(value, device=self.device)
        dist.broadcast(flag, 0)
        return float(flag)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the ranks."""
        if self.world == 1:
            return values
        tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return dict(zip(values, (tensor / self.world).tolist()))

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (a collective: every rank calls it)."""
        if self.world == 1:
            return [obj]
        gathered = [None] * self.world
        dist.all_gather_object(gathered, obj)
        return gathered

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def setup_distributed(device: str) -> Distributed:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device)
    torch.backends.cudnn.benchmark = True  # fixed shapes every step: let cuDNN pick its fastest kernels
    if world == 1:
        return Distributed(device=torch.device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    on_gpu = device.startswith("cuda")
    if on_gpu:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if on_gpu else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local_rank}" if on_gpu else "cpu"))


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Mean of every gradient over the ranks (what DDP does), so all ranks take the same optimiser step."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
