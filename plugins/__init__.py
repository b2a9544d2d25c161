"""Built-in plugins; importing this package registers them all."""

from . import course, dcgan, dfgan, distilbert, gan_cls, hinge_magp, sentence_encoders  # noqa: F401
