"""timm-style registries: name -> factory, one registry per kind of part.

Plugins register on import (`@GENERATORS.register("dcgan")`). Every plugin
package, the lab's own `plugins` included, is found the same way: through
the `t2i_lab.plugins` entry-point group (see pyproject.toml), imported by
`load_plugins()`. So this module imports no plugin by name and is a leaf:
plugins import it, never the other way round. Any registry also accepts
`module:attribute`, so a student's own class plugs in without registering.

Installed plugins are code the user chose to install; a `module:attribute`
spec is code too, so it is imported only where the user typed it (the command
line, their own config file) or said to trust it (`--trust-code`): a run
folder's `config.json` is data (see `lab.checkpoint.trusted_run_config`).
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import sysconfig
import traceback
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

    def registered(self, name: str) -> bool:
        """Whether `name` is a registered (built-in or installed) part, as opposed to code named by `module:attr`."""
        load_plugins()
        return name in self._factories

    def get(self, name: str) -> Callable[..., Any]:
        if self.registered(name):
            return self._factories[name]
        if name.endswith(".py") or "/" in name or "\\" in name:
            raise LabError(f"{self.kind} '{name}' is a file path; {_spec_hint(name)}")
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
    """How to name the class in file `name` (`exercises/ex04_generator.py[:Generator]`) as `module:Class`."""
    path, _, attr = name.partition(":") if not name.endswith(".py") else (name, "", "")
    module = path.removesuffix(".py").replace("\\", "/").strip("/").replace("/", ".")
    if not attr:
        try:
            tree = ast.parse(open(path, encoding="utf-8").read())
            attr = next(n.name for n in tree.body if isinstance(n, ast.ClassDef))
        except (OSError, SyntaxError, ValueError, StopIteration):  # no such file, not Python, no class in it
            attr = "ClassName"
    top = module.split(".")[0]
    return f"name the module and the class instead: {module}:{attr} (run from the folder that holds {top}/)"


def where(error: BaseException) -> str:
    """Where `error` was raised, as " (file.py line N)": where to look, without the whole traceback."""
    library = sysconfig.get_path("stdlib")
    frames = [  # the user's code: not Python's own, nor an installed package's (torch's)
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not f.filename.startswith(("<", library)) and "site-packages" not in f.filename
    ]
    return f" ({frames[-1].filename} line {frames[-1].lineno})" if frames else ""


def _import_spec(spec: str, kind: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise LabError(f"{kind} '{spec}' must be a registered name or module:attribute")
    try:
        module = importlib.import_module(module_name)
    except NotImplementedError:  # an unfinished exercise: the CLI names it
        raise
    except Exception as e:  # not found, a syntax error, or the module itself raised on import
        raise LabError(f"cannot import {kind} '{spec}': {type(e).__name__}: {e}{where(e)}") from None
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
    found = entry_points(group=ENTRY_POINT_GROUP)
    if not found:
        raise LabError(
            f"no plugins found in the '{ENTRY_POINT_GROUP}' entry-point group; install the lab with `pip install -e .`"
        )
    for ep in found:
        try:
            ep.load()
        except Exception as e:  # a broken third-party plugin: name it and say how to get rid of it
            package = f"`pip uninstall {ep.dist.name}`" if ep.dist else "uninstall it"
            raise LabError(
                f"plugin '{ep.name}' ({ep.value}) fails to import: {type(e).__name__}: {str(e)[:200]}{where(e)}; fix it or {package}"
            ) from None
    _loaded = True


def main(args) -> None:
    """`lab plugins`: what can be named in a config."""
    for kind, registry in ALL.items():
        print(f"{kind:15s} {', '.join(registry.list())}")
