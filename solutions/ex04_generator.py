"""Solution to exercise 4: the lab's DCGAN generator, `plugins/dcgan.py`.

`lab train --generator=solutions.ex04_generator:Generator` trains exactly the
same model as `--generator=dcgan`.
"""

from plugins.dcgan import DCGANGenerator as Generator

__all__ = ["Generator"]
