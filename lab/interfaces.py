"""The short name plugins and students import; the interfaces live in `lab.parts.interfaces`."""

from lab.parts.interfaces import Discriminator, Generator, LossOutput, LossRecipe, TextEncoder

__all__ = ["Discriminator", "Generator", "LossOutput", "LossRecipe", "TextEncoder"]
