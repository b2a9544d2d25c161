"""Solution to exercise 2: a frozen sentence-transformers encoder behind the lab's `TextEncoder` interface.

The lab's own copy is `plugins/sentence_encoders.py` (registered as `--encoder=mpnet`).
"""

from __future__ import annotations

import torch
from sentence_transformers import SentenceTransformer

from lab.data.weights import load_error, mpnet_dir
from lab.interfaces import TextEncoder
from plugins.sentence_encoders import MPNET_HUB_NAME


class SentenceTransformerEncoder(TextEncoder):
    """Wraps any sentence-transformers model folder or hub name."""

    def __init__(self, name: str, source: str, device: str = "cpu", batch_size: int = 64):
        self.name, self.source, self.batch_size = name, source, batch_size
        try:
            self.model = SentenceTransformer(source, device=device)
        except Exception as e:  # missing folder, no network, wrong format: all "these weights cannot be loaded"
            raise load_error(name, source, e) from None
        self.dim = self.model.get_embedding_dimension()

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        out = self.model.encode(
            list(texts), batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False
        )
        return out.float().cpu()


def mpnet(path: str = "", device: str = "cpu") -> SentenceTransformerEncoder:
    installed = mpnet_dir() / "modules.json"  # what `lab weights mpnet` leaves behind
    source = path or (str(mpnet_dir()) if installed.is_file() else MPNET_HUB_NAME)
    return SentenceTransformerEncoder("mpnet", source, device)
