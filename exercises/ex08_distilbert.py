"""Exercise 8 (the course's part 2): a DistilBERT text-encoder plugin.

Swap MPNet for DistilBERT (`distilbert-base-uncased`, 768-d). DistilBERT is a
plain language model, not trained to produce sentence vectors, so you build
one yourself: run the model, take `last_hidden_state` [N, T, dim] and average
the token vectors, ignoring padding (*mean pooling*, as sentence-BERT does).
Padding matters: in a batch, short captions are padded to the longest one,
and those pad positions must not change a caption's vector.

1. `mean_pool(hidden, attention_mask)`: sum of hidden * mask over tokens divided
   by the number of real tokens (clamp the count to >= 1e-9: an all-padding row
   gives zeros, not NaN).
2. `DistilBertEncoder`: `transformers.AutoTokenizer` / `AutoModel.from_pretrained(source)`
   (loading errors -> `raise lab.data.weights.load_error("distilbert", source, e) from None`),
   `self.dim` from `model.config.dim`, `name = "distilbert"`; `encode` tokenizes
   `batch_size` captions at a time (padding=True, truncation=True,
   max_length=self.max_length) and returns float32 CPU [N, dim], without gradients.
3. `distilbert(path, device)`: the factory the trainer calls: weights from
   `path`, or the hub name when `path` is "".

Use it without registering: `lab train --encoder=exercises.ex08_distilbert:distilbert
--encoder_path=/folder/saved/with/save_pretrained`. (The built-in plugin is
`plugins/distilbert.py`, registered as `--encoder=distilbert` with
`@ENCODERS.register("distilbert")`: that decorator is all a plugin needs.)

Check your work: `lab grade --only ex08`. Reference: `solutions/ex08_distilbert.py`.
"""

from __future__ import annotations

import torch
from transformers import AutoModel, AutoTokenizer  # noqa: F401  (given: use them)

from lab.data.weights import load_error  # noqa: F401  (given: use them)
from lab.interfaces import TextEncoder
from plugins.distilbert import HUB_NAME


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token vectors where attention_mask is 1 (padding ignored)."""
    # TODO: step 1 above.
    raise NotImplementedError("ex08: mean_pool is not implemented yet")


class DistilBertEncoder(TextEncoder):
    def __init__(self, source: str = HUB_NAME, device: str = "cpu", max_length: int = 128, batch_size: int = 64):
        # TODO: step 2 above: set name, source, device, max_length, batch_size, tokenizer, model (eval mode), dim.
        raise NotImplementedError("ex08: DistilBertEncoder.__init__ is not implemented yet")

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        # TODO: step 2 above: tokenize in chunks of batch_size, run the model, mean_pool, concatenate.
        raise NotImplementedError("ex08: DistilBertEncoder.encode is not implemented yet")


def distilbert(path: str = "", device: str = "cpu") -> DistilBertEncoder:
    # TODO: step 3 above.
    raise NotImplementedError("ex08: distilbert is not implemented yet")
