"""Solution to exercise 3: the lab's dataset, `lab/data/dataset.py` (`FlowersDataset`).

See `wrong_indices` there for how a mismatched image is drawn, and
`__getitems__` for the batch the trainer consumes.
"""

from lab.data.dataset import FlowersDataset

__all__ = ["FlowersDataset"]
