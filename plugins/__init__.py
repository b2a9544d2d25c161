"""Built-in plugins; importing this package registers them all."""
from . import dcgan, distilbert, gan_cls, sentence_encoders  # noqa: F401
