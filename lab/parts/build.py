"""Build the parts a config names, from the registries.

Each part gets what the whole model shares (`text_dim` from the encoder,
`image_size`) plus its own table from the config (`[generator]`,
`[discriminator]`, `[loss]`). Training builds all three; the pipeline
rebuilds only the generator from a run's saved config. Both go through here,
so a part is always built with the same settings, and checked the same way:
only the settings the factory declares, each a plain value of the declared
type (numbers finite), a network no bigger than `MAX_PARAMETERS` (measured
on the meta device, before any memory is taken), and an object of the kind
asked for. A config from a run folder is untrusted input; each of these is
one clear error, never a traceback or a machine out of memory.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch

from lab.config import ExperimentConfig, Part
from lab.errors import LabError
from lab.parts.interfaces import Discriminator, Generator, LossRecipe, TextEncoder
from lab.parts.registry import DISCRIMINATORS, ENCODERS, GENERATORS, LOSSES, Registry, where

MAX_PARAMETERS = 10**9  # 4 GB of fp32 weights, 16 GB with Adam's state: far past any model this lab trains
SCALARS = {"bool": bool, "int": int, "float": float, "str": str}
# What a factory raises for settings it cannot build with (a width of 0, a size that overflows, no memory).
BUILD_ERRORS = (TypeError, ValueError, RuntimeError, OverflowError, ZeroDivisionError, MemoryError)


def _declared_type(param: inspect.Parameter) -> type | None:
    """The scalar type a parameter declares (`width: int`), also as a string (`from __future__ import annotations`)."""
    note = param.annotation
    name = note if isinstance(note, str) else getattr(note, "__name__", "")
    return SCALARS.get(name)


def check_setting(what: str, key: str, value: Any, declared: type | None) -> Any:
    """`value` as the declared type, or one clear error: settings are plain values, numbers are finite."""
    if not isinstance(value, bool | int | float | str):
        raise LabError(f"{what} setting '{key}' must be a number, true/false or text, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise LabError(f"{what} setting '{key}' must be a finite number, got {value}")
    if declared is None or isinstance(value, declared) and not (declared is int and isinstance(value, bool)):
        return value
    if declared is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if declared is int and isinstance(value, float) and value.is_integer():
        return int(value)
    raise LabError(f"{what} setting '{key}' expects {declared.__name__}, got {value!r}")


def _size_check(factory: Callable[..., Any], kwargs: dict[str, Any], what: str) -> None:
    """Build the part on the meta device (shapes only, no memory) and refuse it when it is absurdly big.

    A part the meta device cannot build (it reads a tensor's values while it is built) skips the check."""
    try:
        with torch.device("meta"):
            probe = factory(**kwargs)
    except NotImplementedError:  # an unfinished exercise, or an op meta tensors lack: the real build will say
        return
    except BUILD_ERRORS as e:
        if "meta" in str(e):  # the part needs real values to be built; nothing to measure here
            return
        raise LabError(f"cannot build {what}: {type(e).__name__}: {str(e).splitlines()[0][:200]}{where(e)}") from None
    if isinstance(probe, torch.nn.Module):
        count = sum(p.numel() for p in probe.parameters()) + sum(b.numel() for b in probe.buffers())
        if count > MAX_PARAMETERS:
            raise LabError(f"{what} would have {count:.3g} parameters, over the limit of {MAX_PARAMETERS:.0e}")


def _create(registry: Registry, part: Part, interface: type, **shared: Any) -> Any:
    """`registry`'s `part.name` built with `shared` + `part.options`, checked as the module docstring says."""
    kind = registry.kind
    factory: Callable[..., Any] = registry.get(part.name)
    if not callable(factory) or inspect.isclass(factory) and not issubclass(factory, interface):
        raise LabError(f"'{part.name}' is not a {kind}: {kind}s subclass lab.interfaces.{interface.__name__}")
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
    what = f"{kind} '{part.name}'"
    options = {
        k: check_setting(what, k, v, _declared_type(params[k]) if k in params else None)
        for k, v in part.options.items()
    }
    kwargs = {**{k: v for k, v in shared.items() if k in params or takes_any}, **options}
    described = f"{what} with {options}" if options else what
    if issubclass(interface, torch.nn.Module):
        _size_check(factory, kwargs, described)
    try:
        built = factory(**kwargs)
    except NotImplementedError:  # an unfinished exercise (a RuntimeError too): the CLI names it
        raise
    except BUILD_ERRORS as e:  # a setting of the wrong type or a missing one: the user's config
        raise LabError(
            f"cannot build {described}: {type(e).__name__}: {str(e).splitlines()[0][:200]}{where(e)}"
        ) from None
    if not isinstance(built, interface):
        raise LabError(f"'{part.name}' is not a {kind}: it made a {type(built).__name__}, not a {interface.__name__}")
    return built


def build_generator(config: ExperimentConfig, text_dim: int) -> Generator:
    return _create(GENERATORS, config.generator, Generator, text_dim=text_dim, image_size=config.image_size)


def build_discriminator(config: ExperimentConfig, text_dim: int) -> Discriminator:
    return _create(DISCRIMINATORS, config.discriminator, Discriminator, text_dim=text_dim, image_size=config.image_size)


def build_loss(config: ExperimentConfig) -> LossRecipe:
    return _create(LOSSES, config.loss, LossRecipe)


def build_parts(config: ExperimentConfig, text_dim: int) -> tuple[Generator, Discriminator, LossRecipe]:
    """Generator, discriminator and loss recipe, all following one image_size."""
    return build_generator(config, text_dim), build_discriminator(config, text_dim), build_loss(config)


def named_parts(config: ExperimentConfig) -> list[tuple[Registry, str]]:
    """Each part `config` names, with the registry that resolves it."""
    return [
        (ENCODERS, config.encoder),
        (GENERATORS, config.generator.name),
        (DISCRIMINATORS, config.discriminator.name),
        (LOSSES, config.loss.name),
    ]


def check_names(config: ExperimentConfig) -> None:
    """Every part the config names exists (registered, or an importable `module:attribute`): a misspelt
    name is one line before an encoder loads for seconds."""
    for registry, name in named_parts(config):
        registry.get(name)


def load_encoder(config: ExperimentConfig, device: str = "cpu") -> TextEncoder:
    return _create(ENCODERS, Part(config.encoder), TextEncoder, path=config.encoder_path, device=device)


def code_specs(config: ExperimentConfig) -> list[str]:
    """The parts `config` names by `module:attribute` rather than by a registered name, e.g.
    `["generator 'exercises.ex04_generator:Generator'"]`: code that building them would import."""
    return [
        f"{registry.kind} '{name}'"
        for registry, name in named_parts(config)
        if not registry.registered(name) and ":" in name
    ]
