"""Solution to exercise 3: the Flowers dataset, with "wrong" images for GAN-CLS.

The lab's `FlowersDataset` (`lab/data/dataset.py`) is this class plus data
augmentation (random crops and flips) and moving the data onto the GPU.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from lab.errors import LabError
from lab.pixels import to_float


class FlowersDataset(Dataset):
    """One item per caption: (image, embedding, text, wrong_image) with images in [-1, 1]."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        embeddings: torch.Tensor,
        texts: list[str],
        caption_image: torch.Tensor,
    ):
        self.images, self.labels, self.embeddings = images, labels, embeddings
        self.texts, self.caption_image = texts, caption_image
        self.generator = torch.Generator().manual_seed(0)  # the wrong-image draws: seeded, so resumable

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def wrong_indices(self, image_idx: torch.Tensor) -> torch.Tensor:
        """For each image index, a different image (of a different class where classes are known)."""
        n = len(self.images)
        if n < 2:
            raise LabError("a data set needs at least 2 images to draw mismatched ('wrong') pairs")
        wrong = (image_idx + torch.randint(1, n, image_idx.shape, generator=self.generator)) % n  # never itself
        if (self.labels >= 0).all() and len(self.labels.unique()) > 1:
            for _ in range(100):  # redraw the picks of the same class; with many classes this ends at once
                same = self.labels[wrong] == self.labels[image_idx]
                if not same.any():
                    break
                wrong[same] = (image_idx[same] + torch.randint(1, n, (int(same.sum()),), generator=self.generator)) % n
        return wrong

    def __getitems__(self, indices: list[int]) -> dict:
        idx = torch.as_tensor(indices, dtype=torch.long)
        image_idx = self.caption_image[idx]
        return {
            "image": to_float(self.images[image_idx]),
            "embedding": self.embeddings[idx],
            "text": [self.texts[i] for i in indices],
            "wrong_image": to_float(self.images[self.wrong_indices(image_idx)]),
            "index": idx,
        }

    def __getitem__(self, index: int) -> dict:
        batch = self.__getitems__([index])
        return {k: v[0] for k, v in batch.items()}
