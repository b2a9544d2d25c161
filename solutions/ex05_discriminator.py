"""Solution to exercise 5: the lab's DCGAN discriminator, `plugins/dcgan.py`.

`lab train --discriminator=solutions.ex05_discriminator:Discriminator` trains
exactly the same model as `--discriminator=dcgan`.
"""

from plugins.dcgan import DCGANDiscriminator as Discriminator

__all__ = ["Discriminator"]
