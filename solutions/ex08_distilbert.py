"""Solution to exercise 8 (the course's part 2): a DistilBERT text encoder with mean pooling.

The lab's own copy is `plugins/distilbert.py`, registered as `--encoder=distilbert`.
"""

from __future__ import annotations

import torch
from transformers import AutoModel, AutoTokenizer

from lab.data.weights import load_error
from lab.interfaces import TextEncoder
from plugins.distilbert import HUB_NAME


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token vectors where attention_mask is 1 (padding ignored)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [N, T, 1]
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # all padding: 0 / 1e-9 = 0, not NaN


class DistilBertEncoder(TextEncoder):
    def __init__(self, source: str = HUB_NAME, device: str = "cpu", max_length: int = 128, batch_size: int = 64):
        self.name, self.source, self.device = "distilbert", source, device
        self.max_length, self.batch_size = max_length, batch_size
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source).to(device).eval()
        except Exception as e:  # missing folder, no network, wrong format: one line for the user
            raise load_error("distilbert", source, e) from None
        self.dim = self.model.config.dim

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        chunks = []
        for i in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(
                list(texts[i : i + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**tokens).last_hidden_state  # [n, T, dim]
            chunks.append(mean_pool(hidden, tokens["attention_mask"]).float().cpu())
        return torch.cat(chunks) if chunks else torch.empty(0, self.dim)


def distilbert(path: str = "", device: str = "cpu") -> DistilBertEncoder:
    return DistilBertEncoder(path or HUB_NAME, device)
