"""Build the parts a config names, from the registries.

Training builds all three; generation, evaluation and the app rebuild only
the generator from a run's saved config. Both go through here, so a part is
always built with the same settings, all following one `image_size`.
"""
from __future__ import annotations

from .config import ExperimentConfig
from .interfaces import Discriminator, Generator, LossRecipe
from .registry import DISCRIMINATORS, GENERATORS, LOSSES


def _common(config: ExperimentConfig, text_dim: int) -> dict:
    return dict(text_dim=text_dim, text_proj_dim=config.text_proj_dim, width=config.width, image_size=config.image_size)


def build_generator(config: ExperimentConfig, text_dim: int) -> Generator:
    return GENERATORS.create(config.generator, noise_dim=config.noise_dim, **_common(config, text_dim))


def build_parts(config: ExperimentConfig, text_dim: int) -> tuple[Generator, Discriminator, LossRecipe]:
    """Generator, discriminator and loss recipe, all following one image_size."""
    generator = build_generator(config, text_dim)
    discriminator = DISCRIMINATORS.create(config.discriminator, **_common(config, text_dim))
    recipe = LOSSES.create(config.loss, feature_weight=config.feature_weight, l1_weight=config.l1_weight)
    return generator, discriminator, recipe
