"""timm-style registries: name -> factory, one registry per kind of part.

Plugins register on import (`@GENERATORS.register("dcgan")`). Every plugin
package, the lab's own `plugins` included, is found the same way: through
the `t2i_lab.plugins` entry-point group (see pyproject.toml), imported by
`load_plugins()`. So this module imports no plugin by name and is a leaf:
plugins import it, never the other way round. Any registry also accepts
`module:attribute`, so a student's own class plugs in without registering.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from lab.errors import LabError

ENTRY_POINT_GROUP = "t2i_lab.plugins"


class Registry:
    """A named collection of factories for one kind of part (encoder, generator, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._factories and self._factories[name] is not factory:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._factories[name] = factory
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., Any]:
        load_plugins()
        if name in self._factories:
            return self._factories[name]
        if ":" in name:
            return _import_spec(name, self.kind)
        raise LabError(
            f"unknown {self.kind} '{name}'; available: {', '.join(self.list()) or 'none'}, "
            f"or your own as module:attribute, e.g. {_spec_hint(name)}"
        )

    def create(self, name: str, **kwargs: Any) -> Any:
        return self.get(name)(**kwargs)

    def list(self, pattern: str = "*") -> list[str]:
        load_plugins()
        return sorted(n for n in self._factories if fnmatch.fnmatch(n, pattern))


def _spec_hint(name: str) -> str:
    """`module:attribute` for what was given: a file path (`exercises/ex04_generator.py`) becomes its module."""
    if name.endswith(".py") or "/" in name:
        return name.removesuffix(".py").strip("./").replace("/", ".") + ":ClassName"
    return "my_package.my_module:MyClass"


def _import_spec(spec: str, kind: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, SyntaxError) as e:
        raise LabError(f"cannot import {kind} '{spec}': {e}") from None
    if not hasattr(module, attr):
        raise LabError(f"module '{module_name}' has no {kind} '{attr}'")
    return getattr(module, attr)


ENCODERS = Registry("text encoder")
GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")
LOSSES = Registry("loss recipe")
ALL = {"encoders": ENCODERS, "generators": GENERATORS, "discriminators": DISCRIMINATORS, "losses": LOSSES}

_loaded = False


def load_plugins() -> None:
    """Import every installed `t2i_lab.plugins` entry point (the built-in `plugins` package is one), once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    found = entry_points(group=ENTRY_POINT_GROUP)
    if not found:
        raise LabError(
            f"no plugins found in the '{ENTRY_POINT_GROUP}' entry-point group; install the lab with `pip install -e .`"
        )
    for ep in found:
        ep.load()


def main(args) -> None:
    """`lab plugins`: what can be named in a config."""
    for kind, registry in ALL.items():
        print(f"{kind:15s} {', '.join(registry.list())}")
