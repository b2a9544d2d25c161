"""Conversions between the three forms an image takes in the lab.

uint8 [0, 255] tensors (the image cache, saved PNGs, FID input), float
[-1, 1] tensors (what G's tanh produces and D reads) and PIL images (files,
the app).
"""

from __future__ import annotations

import torch
from PIL import Image


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range G's tanh produces."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], the quantisation a saved PNG gets (real images are uint8 too)."""
    return images.detach().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def from_pil(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image -> uint8 [3, H, W]."""
    return (
        torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        .view(image.height, image.width, 3)
        .permute(2, 0, 1)
        .clone()
    )


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """[-1, 1] float images [N, 3, H, W] -> PIL images."""
    arr = to_uint8(images.cpu()).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a) for a in arr]
