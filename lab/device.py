"""Which torch device a command runs on, and in which precision: checked up front, so a typo is one line, not a CUDA traceback."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from lab.config import PRECISIONS
from lab.errors import LabError


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when a GPU is visible, else "cpu"; "cpu", "cuda" and "cuda:N" are checked against this machine."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise LabError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N") from None
    if parsed.type == "cpu":
        return device
    if parsed.type != "cuda":
        raise LabError(f"device '{device}' is not supported; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise LabError(f"device '{device}' asked for, but no CUDA GPU is visible; use --device cpu (or auto)")
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise LabError(f"device '{device}' does not exist: {torch.cuda.device_count()} GPU(s) visible")
    return device


def to_device_async(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor (noise, batch indices) on `device` without making the host wait for the GPU.

    A copy from ordinary (pageable) host memory to a GPU first waits for every kernel already queued, so
    the host stalls once per batch; from pinned memory the copy is queued behind those kernels instead."""
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


LOW_PRECISION = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """ "auto" -> "bf16" on a CUDA GPU with native bf16 (Ampere, Hopper, ...), else "fp32"; "bf16" on a GPU without
    it is a one-line error. bf16 and fp16 autocast also run on a CPU (bf16 fast where the CPU has AVX512-BF16 or AMX)."""
    if precision not in PRECISIONS:
        raise LabError(f"unknown precision '{precision}'; use {', '.join(PRECISIONS)}")
    device = torch.device(device)
    native_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if precision == "auto":
        return "bf16" if native_bf16 else "fp32"
    if precision == "bf16" and device.type == "cuda" and not native_bf16:
        raise LabError(f"{torch.cuda.get_device_name(device)} has no bf16; use --precision=fp16 (or fp32)")
    return precision


def autocast(precision: str, device: str | torch.device) -> AbstractContextManager:
    """Mixed precision for a resolved `precision`: `torch.autocast` for bf16/fp16; for fp32 no autocast at all
    (a `nullcontext`), so fp32 runs compute exactly what they computed before the lab had a precision setting."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=LOW_PRECISION[precision])


class MixedPrecision(nn.Module):
    """A module run under autocast that hands back fp32 outputs.

    Convolutions and matmuls inside run in bf16/fp16; everything computed from the outputs (the loss recipes'
    reductions, a gradient penalty's norm, MSGAN's ratio) is fp32, and so are the weights (so the optimisers
    and the EMA average fp32 numbers). The wrapped module's attributes (`noise_dim`, `match_scores`, ...) are
    reached through the wrapper; its state dict is not, so checkpoints keep the plain module's names."""

    def __init__(self, module: nn.Module, precision: str, device: torch.device):
        super().__init__()
        self.module, self.precision, self.device_type = module, precision, torch.device(device).type

    def forward(self, *args):
        with autocast(self.precision, self.device_type):
            out = self.module(*args)
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()

    @property
    def extra_losses(self) -> dict[str, torch.Tensor]:
        return {k: v.float() for k, v in getattr(self.module, "extra_losses", {}).items()}

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)
