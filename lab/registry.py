"""The short name plugins and students import; the registries live in `lab.parts.registry`."""

from lab.parts.registry import (
    ALL,
    DISCRIMINATORS,
    ENCODERS,
    ENTRY_POINT_GROUP,
    GENERATORS,
    LOSSES,
    Registry,
    load_plugins,
)

__all__ = ["ALL", "DISCRIMINATORS", "ENCODERS", "ENTRY_POINT_GROUP", "GENERATORS", "LOSSES", "Registry", "load_plugins"]
