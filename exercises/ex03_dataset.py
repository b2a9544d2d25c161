"""Exercise 3: the Flowers dataset, with "wrong" images.

GAN-CLS trains the discriminator on three kinds of pairs: a real image with
its caption (should say "real"), a generated image with the caption ("fake")
and a real image with a caption that does *not* describe it ("wrong", also
"fake"). Without the wrong pair, D only learns "is this a nice flower?" and G
is free to ignore the text. The original tutorial never built the wrong pair.

One item per caption (a flower has up to 10). The data arrives already decoded:

- `images`: uint8 [K, 3, S, S], one per flower;
- `labels`: long [K], the flower's class, or -1 everywhere when unknown;
- `embeddings`: float [N, D], one per caption; `texts`: the N captions;
- `caption_image`: long [N], which image caption i describes.

A batch is a dict: "image" and "wrong_image" as float in [-1, 1] (the range
G's tanh produces: uint8 / 127.5 - 1, see `lab.pixels.to_float`), "embedding",
"text" (list of str) and "index" (the caption indices, a long tensor). The wrong image of an
item is a *different* image, and of a different class when classes are known.
Its draws use `self.generator` (a torch.Generator) so that a seeded run, and
a resumed one, draws exactly the same wrong images.

`__getitems__` builds a whole batch with tensor indexing: no per-item Python.

Check your work: `lab grade --only ex03`. Reference: `solutions/ex03_dataset.py`.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from lab.errors import LabError  # noqa: F401  (given: use them)
from lab.pixels import to_float  # noqa: F401  (given: use them)


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
        # TODO: keep the five inputs as attributes of the same names, and
        #  self.generator = torch.Generator().manual_seed(0) for the wrong-image draws.
        raise NotImplementedError("ex03: FlowersDataset.__init__ is not implemented yet")

    def __len__(self) -> int:
        # TODO: one item per caption.
        raise NotImplementedError("ex03: FlowersDataset.__len__ is not implemented yet")

    @property
    def image_size(self) -> int:
        # TODO: the side length S of the stored images.
        raise NotImplementedError("ex03: FlowersDataset.image_size is not implemented yet")

    def wrong_indices(self, image_idx: torch.Tensor) -> torch.Tensor:
        """For each image index, a different image (of a different class where classes are known)."""
        # TODO: with fewer than 2 images raise lab.errors.LabError.
        #  Draw an offset in [1, K) per entry with torch.randint(..., generator=self.generator) and
        #  take (image_idx + offset) % K: never the same image. When every label is known (>= 0) and
        #  there is more than one class, redraw the entries whose label equals their image's label.
        raise NotImplementedError("ex03: FlowersDataset.wrong_indices is not implemented yet")

    def __getitems__(self, indices: list[int]) -> dict:
        # TODO: the batch dict described above, for caption indices `indices`.
        raise NotImplementedError("ex03: FlowersDataset.__getitems__ is not implemented yet")

    def __getitem__(self, index: int) -> dict:
        # TODO: one item: the batch of [index], with each value's batch dimension removed.
        raise NotImplementedError("ex03: FlowersDataset.__getitem__ is not implemented yet")
