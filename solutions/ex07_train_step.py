"""Solution to exercise 7: the lab's training step, `lab/train.py` (`train_step`)."""
from lab.train import train_step

__all__ = ["train_step"]
