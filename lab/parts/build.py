"""Build the parts a config names, from the registries.

Each part gets what the whole model shares (`text_dim` from the encoder,
`image_size`) plus its own table from the config (`[generator]`,
`[discriminator]`, `[loss]`). Training builds all three; the pipeline
rebuilds only the generator from a run's saved config. Both go through here,
so a part is always built with the same settings.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from lab.config import ExperimentConfig, Part
from lab.errors import LabError
from lab.parts.interfaces import Discriminator, Generator, LossRecipe, TextEncoder
from lab.parts.registry import DISCRIMINATORS, ENCODERS, GENERATORS, LOSSES, Registry


def _create(registry: Registry, part: Part, kind: str, **shared: Any) -> Any:
    """`registry`'s `part.name` built with `shared` + `part.options`; unknown settings are one clear error."""
    factory: Callable[..., Any] = registry.get(part.name)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in part.options if k not in params and not takes_any]
    if unknown:
        known = [k for k in params if k not in shared]
        raise LabError(
            f"{kind} '{part.name}' has no setting {', '.join(map(repr, unknown))}; it takes: {', '.join(known) or 'none'}"
        )
    accepted = {k: v for k, v in shared.items() if k in params or takes_any}
    try:
        return factory(**accepted, **part.options)
    except TypeError as e:  # a setting of the wrong type or a missing one: the user's config
        raise LabError(f"cannot build {kind} '{part.name}' with {part.options}: {e}") from None


def build_generator(config: ExperimentConfig, text_dim: int) -> Generator:
    return _create(GENERATORS, config.generator, "generator", text_dim=text_dim, image_size=config.image_size)


def build_discriminator(config: ExperimentConfig, text_dim: int) -> Discriminator:
    return _create(
        DISCRIMINATORS, config.discriminator, "discriminator", text_dim=text_dim, image_size=config.image_size
    )


def build_loss(config: ExperimentConfig) -> LossRecipe:
    return _create(LOSSES, config.loss, "loss recipe")


def build_parts(config: ExperimentConfig, text_dim: int) -> tuple[Generator, Discriminator, LossRecipe]:
    """Generator, discriminator and loss recipe, all following one image_size."""
    return build_generator(config, text_dim), build_discriminator(config, text_dim), build_loss(config)


def load_encoder(config: ExperimentConfig, device: str = "cpu") -> TextEncoder:
    return ENCODERS.create(config.encoder, path=config.encoder_path, device=device)
