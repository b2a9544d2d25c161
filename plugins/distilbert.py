"""DistilBERT sentence encoder: mean of the last hidden states over real tokens.

DistilBERT is not trained for sentence similarity, so mean pooling (as in
sentence-BERT) is the simplest sound way to get one vector per caption.
Loads `distilbert-base-uncased` from the hub, or any local folder saved with
`save_pretrained`.
"""

from __future__ import annotations

import torch

from lab.data.weights import load_error
from lab.interfaces import TextEncoder
from lab.registry import ENCODERS

HUB_NAME = "distilbert-base-uncased"


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token vectors where attention_mask is 1 (padding ignored)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class DistilBertEncoder(TextEncoder):
    def __init__(self, source: str = HUB_NAME, device: str = "cpu", max_length: int = 128, batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer

        self.name, self.source, self.device = "distilbert", source, device
        self.max_length, self.batch_size = max_length, batch_size
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source).to(device).eval()
        except Exception as e:
            raise load_error("distilbert", source, e) from None
        self.dim = self.model.config.dim

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        chunks = []
        for i in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[i : i + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            chunks.append(mean_pool(hidden, batch["attention_mask"]).float().cpu())
        return torch.cat(chunks) if chunks else torch.empty(0, self.dim)


@ENCODERS.register("distilbert")
def distilbert(path: str = "", device: str = "cpu") -> DistilBertEncoder:
    return DistilBertEncoder(path or HUB_NAME, device)
