"""Solution to exercise 6: the lab's GAN-CLS loss recipe, `plugins/gan_cls.py`."""

from plugins.gan_cls import GanClsLoss

__all__ = ["GanClsLoss"]
