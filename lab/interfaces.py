"""The four pluggable parts of a text-to-image GAN.

Everything the trainer, evaluator and app touch goes through these
interfaces, so a plugin only has to honour them to be usable everywhere.
"""
from __future__ import annotations

import abc
import hashlib
from dataclasses import dataclass, field

import torch
from torch import nn


class TextEncoder(abc.ABC):
    """Turns captions into fixed-size sentence embeddings (frozen, not trained)."""

    name: str = "encoder"
    dim: int = 0
    source: str = ""  # hub name or folder the weights came from

    @abc.abstractmethod
    def encode(self, texts: list[str]) -> torch.Tensor:
        """Return a float tensor of shape [len(texts), dim]."""

    @property
    def cache_key(self) -> str:
        """Identifies the weights, so cached embeddings are never reused across models."""
        return f"{self.name}-{self.dim}-{hashlib.sha1(self.source.encode()).hexdigest()[:8]}"


class Generator(nn.Module, abc.ABC):
    """Maps (noise [N, noise_dim], text embedding [N, text_dim]) to images in [-1, 1]."""

    noise_dim: int
    text_dim: int
    image_size: int

    @abc.abstractmethod
    def forward(self, noise: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor: ...


class Discriminator(nn.Module, abc.ABC):
    """Scores (image, text embedding) pairs; also returns image features for feature matching."""

    text_dim: int
    image_size: int

    @abc.abstractmethod
    def forward(self, image: torch.Tensor, text_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logits [N], image features [N, ...])."""


@dataclass
class LossOutput:
    """A total to backpropagate plus named float terms for logging."""

    total: torch.Tensor
    terms: dict[str, float] = field(default_factory=dict)


class LossRecipe(abc.ABC):
    """How discriminator and generator losses are built from D's outputs."""

    @abc.abstractmethod
    def discriminator_loss(
        self, real_logits: torch.Tensor, wrong_logits: torch.Tensor, fake_logits: torch.Tensor
    ) -> LossOutput: ...

    @abc.abstractmethod
    def generator_loss(
        self,
        fake_logits: torch.Tensor,
        fake_features: torch.Tensor,
        real_features: torch.Tensor,
        fake_images: torch.Tensor,
        real_images: torch.Tensor,
    ) -> LossOutput: ...
