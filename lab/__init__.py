"""t2i-lab: an experiment lab for text-to-image GANs (GAN-CLS / DCGAN on sentence embeddings)."""
