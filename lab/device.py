"""Which torch device a command runs on: checked up front, so a typo is one line, not a CUDA traceback."""
from __future__ import annotations

import torch

from .errors import LabError


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"; "cpu", "cuda" and "cuda:N" are checked against this machine."""
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
