"""Exercise 8: a DistilBERT encoder plugin, checked on a tiny random DistilBERT saved to disk.

The tiny model has real DistilBERT code and a real BERT vocabulary (MiniLM's),
only random weights and 32 dimensions, so the checks run offline in seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lab.errors import LabError
from lab.parts.interfaces import TextEncoder
from lab.parts.registry import ENCODERS

DIM = 32
CAPTIONS = ["a red flower", "this flower has five long yellow petals and a brown center", "white petals"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, minilm_path) -> str:
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-distilbert")
    tokenizer = DistilBertTokenizerFast(vocab_file=str(Path(minilm_path) / "vocab.txt"))
    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=tokenizer.vocab_size, dim=DIM, n_layers=1, n_heads=2, hidden_dim=64, max_position_embeddings=128
    )
    DistilBertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def encoder(ex, tiny_model):
    return ex.DistilBertEncoder(tiny_model, batch_size=2)


@pytest.mark.points(2)
def test_mean_pool_ignores_padding(ex):
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, -1.0], [7.0, 7.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    torch.testing.assert_close(ex.mean_pool(hidden, mask), torch.tensor([[2.0, 3.0], [5.0, -1.0]]))


@pytest.mark.points(1)
def test_mean_pool_of_only_padding_is_finite(ex):
    out = ex.mean_pool(torch.ones(1, 3, 2), torch.zeros(1, 3, dtype=torch.long))
    assert torch.isfinite(out).all()


@pytest.mark.points(2)
def test_encoder_interface(encoder, tiny_model):
    assert isinstance(encoder, TextEncoder)
    assert (encoder.name, encoder.dim, encoder.source) == ("distilbert", DIM, tiny_model)
    out = encoder.encode(CAPTIONS)
    assert out.shape == (3, DIM) and out.dtype == torch.float32 and not out.requires_grad


@pytest.mark.points(2)
def test_single_caption_is_the_mean_of_its_tokens(encoder, tiny_model):
    from transformers import AutoModel, AutoTokenizer

    tokens = AutoTokenizer.from_pretrained(tiny_model)(CAPTIONS[1], return_tensors="pt")
    with torch.no_grad():
        reference = AutoModel.from_pretrained(tiny_model)(**tokens).last_hidden_state.mean(1)
    torch.testing.assert_close(encoder.encode(CAPTIONS[1:2]), reference, atol=1e-5, rtol=1e-4)


@pytest.mark.points(2)
def test_padding_and_batching_do_not_change_vectors(ex, encoder, tiny_model):
    alone = torch.cat([encoder.encode([c]) for c in CAPTIONS])
    torch.testing.assert_close(encoder.encode(CAPTIONS), alone, atol=1e-5, rtol=1e-4)
    one_batch = ex.DistilBertEncoder(tiny_model, batch_size=64).encode(CAPTIONS)
    torch.testing.assert_close(one_batch, alone, atol=1e-5, rtol=1e-4)


@pytest.mark.points(1)
def test_long_captions_are_truncated(encoder):
    assert encoder.encode(["petal " * 400]).shape == (1, DIM)


@pytest.mark.points(1)
def test_unloadable_weights_raise_lab_error(ex, tmp_path):
    with pytest.raises(LabError):
        ex.DistilBertEncoder(str(tmp_path / "no-such-model"))


@pytest.mark.points(2)
def test_plugs_into_the_registry(ex, tiny_model):
    encoder = ENCODERS.create(f"{ex.__name__}:distilbert", path=tiny_model, device="cpu")
    assert isinstance(encoder, ex.DistilBertEncoder)
    assert encoder.source == tiny_model and encoder.encode(CAPTIONS[:1]).shape == (1, DIM)
