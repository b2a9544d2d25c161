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

from lab.errors import LabError


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
    """Maps (noise [N, noise_dim], text embedding [N, text_dim]) to images in [-1, 1].

    A generator with a loss of its own (e.g. the KL term of conditioning
    augmentation) puts it in `extra_losses` during a training forward pass;
    the trainer adds it to G's loss and logs it under its key.
    """

    noise_dim: int
    text_dim: int
    image_size: int
    extra_losses: dict[str, torch.Tensor]

    @abc.abstractmethod
    def forward(self, noise: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor: ...


class Discriminator(nn.Module, abc.ABC):
    """Scores (image, text embedding) pairs; also returns image features for feature matching."""

    text_dim: int
    image_size: int

    @abc.abstractmethod
    def forward(self, image: torch.Tensor, text_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logits [N], image features [N, ...])."""

    def match_scores(self, features: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """[N, N] scores of image i (its `forward` features) against caption j, for losses that judge
        every pairing in a batch at once. Optional: a discriminator without a matching head says so."""
        raise LabError(f"discriminator {type(self).__name__} cannot score every image-caption pairing in a batch")


@dataclass
class LossOutput:
    """A total to backpropagate plus named terms for logging.

    A term is a detached 0-d tensor (what the lab's recipes give) or a float.
    Tensors stay on the device: reading one (`.item()`, `float()`) makes the
    host wait for the GPU, so the trainer reads them back only every
    `sync_every` steps. Floats (the course's exercises return them) work
    too, at the cost of that wait on every step."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor | float] = field(default_factory=dict)


class LossRecipe(abc.ABC):
    """How the discriminator and generator losses are built.

    A recipe gets D itself, so it decides which pairs D judges and may take
    gradients through D (gradient penalties). The default steps run D on each
    group alone (real pairs, wrong pairs, fakes): with BatchNorm in D, every
    group is normalised with its own batch statistics, exactly as the G step
    later sees the fakes. One pass over the concatenated groups would be a
    different, measured-worse algorithm. A recipe that only needs D's outputs
    implements the two `*_loss` methods and inherits the steps.
    """

    def discriminator_step(
        self,
        discriminator: Discriminator,
        real: torch.Tensor,
        wrong: torch.Tensor,
        fake: torch.Tensor,
        embedding: torch.Tensor,
    ) -> LossOutput:
        """D's loss for one batch; `fake` is already detached from G."""
        real_logits, _, wrong_logits, fake_logits = self.judge_pairs(discriminator, real, wrong, fake, embedding)
        return self.discriminator_loss(real_logits, wrong_logits, fake_logits)

    @staticmethod
    def judge_pairs(
        discriminator: Discriminator,
        real: torch.Tensor,
        wrong: torch.Tensor,
        fake: torch.Tensor,
        embedding: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """D on the real, wrong and fake pairs, each group in its own pass (its own batch statistics):
        the real pairs' logits and features, then the wrong and the fake pairs' logits."""
        real_logits, real_features = discriminator(real, embedding)
        wrong_logits, _ = discriminator(wrong, embedding)
        fake_logits, _ = discriminator(fake, embedding)
        return real_logits, real_features, wrong_logits, fake_logits

    def generator_step(
        self, discriminator: Discriminator, fake: torch.Tensor, real: torch.Tensor, embedding: torch.Tensor
    ) -> LossOutput:
        """G's loss for one batch, judged by the D that the D step just updated.

        The real features for feature matching come from that same D (run on
        the real batch alone, without gradients), so both sides of the match
        are measured by one network."""
        fake_logits, fake_features, real_features = self.judge_fakes(discriminator, fake, real, embedding)
        return self.generator_loss(fake_logits, fake_features, real_features, fake, real)

    @staticmethod
    def judge_fakes(
        discriminator: Discriminator, fake: torch.Tensor, real: torch.Tensor, embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """D on the fakes (with gradients, for G) and on the real batch alone (without): the fakes' logits
        and features, and the real features feature matching aims at."""
        fake_logits, fake_features = discriminator(fake, embedding)
        with torch.no_grad():
            _, real_features = discriminator(real, embedding)
        return fake_logits, fake_features, real_features

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
