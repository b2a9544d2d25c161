"""Exercise 2: encode captions with MPNet (sentence-BERT).

The generator cannot read words; it needs one fixed-size vector per caption.
A sentence-transformers model (here `all-mpnet-base-v2`, 768 numbers per
caption) runs a BERT-family transformer over the tokens and mean-pools the
token vectors into one sentence embedding, trained so that captions that mean
the same thing get nearby vectors. The encoder is *frozen*: the GAN never
trains it, so its outputs can be computed once and cached.

Your class wraps any sentence-transformers model folder (or hub name) behind
the lab's `TextEncoder` interface (`name`, `dim`, `source`, `encode`). The
`mpnet` factory is what the trainer calls for `--encoder=...`: it gets the
`path` and `device` settings and picks the weights.

Useful: `sentence_transformers.SentenceTransformer(source, device=device)`,
its `get_embedding_dimension()` and
`encode(texts, batch_size=..., convert_to_tensor=True, show_progress_bar=False)`;
`lab.data.weights.mpnet_dir()` (where `lab weights mpnet` installs the weights) and
`lab.data.weights.load_error(name, source, error)` (a one-line LabError).

Check your work: `lab grade --only ex02`. Reference: `solutions/ex02_encode.py`.
"""

from __future__ import annotations

import torch
from sentence_transformers import SentenceTransformer  # noqa: F401  (given: use them)

from lab.data.weights import load_error, mpnet_dir  # noqa: F401  (given: use them)
from lab.interfaces import TextEncoder
from plugins.sentence_encoders import MPNET_HUB_NAME  # noqa: F401  (for your mpnet factory)


class SentenceTransformerEncoder(TextEncoder):
    """Wraps any sentence-transformers model folder or hub name."""

    def __init__(self, name: str, source: str, device: str = "cpu", batch_size: int = 64):
        # TODO: set self.name, self.source, self.batch_size; load the model from `source`
        #  (any loading error -> raise load_error(name, source, e) from None, so the user sees
        #  one line, not a traceback); set self.dim to the model's embedding size.
        raise NotImplementedError("ex02: SentenceTransformerEncoder.__init__ is not implemented yet")

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        # TODO: return a float32 CPU tensor [len(texts), self.dim], encoding self.batch_size texts at a time.
        raise NotImplementedError("ex02: SentenceTransformerEncoder.encode is not implemented yet")


def mpnet(path: str = "", device: str = "cpu") -> SentenceTransformerEncoder:
    # TODO: an encoder named "mpnet" loading from `path` when given; otherwise from mpnet_dir()
    #  when it holds a modules.json (installed by `lab weights mpnet`); otherwise MPNET_HUB_NAME.
    raise NotImplementedError("ex02: mpnet is not implemented yet")
