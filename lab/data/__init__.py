"""Everything read from disk before training: captions (both Flowers layouts), the dataset with its
matching and "wrong" images and cached tensors, the synthetic flower sets, downloads, offline weights.

Imports lab.parts (the TextEncoder interface) and the shared helpers; never training or evaluation."""
