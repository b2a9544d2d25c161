"""Which torch device a command runs on."""
from __future__ import annotations

import torch


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"; anything else is used as given."""
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
