"""Exercise 2: a sentence-transformers encoder behind the lab's TextEncoder interface.

Uses the small MiniLM model shipped as a PyPI package (384-d, loads in a second)
in place of MPNet, which is the same kind of model, only larger.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lab.errors import LabError
from lab.parts.interfaces import TextEncoder

CAPTIONS = ["a red flower with five round petals", "this flower has crimson petals", "a diesel engine in a truck"]


def _pooling_dim(model_dir: str) -> int:
    return json.loads((Path(model_dir) / "1_Pooling" / "config.json").read_text())["word_embedding_dimension"]


@pytest.fixture(scope="module")
def encoder(ex, minilm_path):
    return ex.SentenceTransformerEncoder("minilm", minilm_path, batch_size=2)


@pytest.mark.points(2)
def test_encoder_interface_and_dim(ex, encoder, minilm_path):
    assert isinstance(encoder, TextEncoder)
    assert (encoder.name, encoder.source) == ("minilm", minilm_path)
    assert encoder.dim == _pooling_dim(minilm_path)


@pytest.mark.points(2)
def test_encode_shape_dtype_device(encoder):
    out = encoder.encode(CAPTIONS)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (len(CAPTIONS), encoder.dim)
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert not out.requires_grad


@pytest.mark.points(2)
def test_encode_matches_sentence_transformers(encoder, minilm_path):
    from sentence_transformers import (
        SentenceTransformer,  # here, so grading stubs never pays the import
    )

    reference = SentenceTransformer(minilm_path, device="cpu").encode(CAPTIONS, convert_to_tensor=True)
    torch.testing.assert_close(encoder.encode(CAPTIONS), reference.float().cpu(), atol=1e-5, rtol=1e-4)


@pytest.mark.points(1)
def test_similar_captions_are_closer(encoder):
    flower, crimson, engine = encoder.encode(CAPTIONS)
    assert F.cosine_similarity(flower, crimson, dim=0) > F.cosine_similarity(flower, engine, dim=0) + 0.1


@pytest.mark.points(1)
def test_unloadable_weights_raise_lab_error(ex, tmp_path):
    with pytest.raises(LabError):
        ex.SentenceTransformerEncoder("mpnet", str(tmp_path / "no-such-model"))


@pytest.mark.points(2)
def test_mpnet_factory_finds_installed_weights(ex, minilm_path, tmp_path, monkeypatch):
    """`lab weights mpnet` installs under $T2I_LAB_HOME; a stand-in model there must be picked up."""
    installed = tmp_path / "weights" / "all-mpnet-base-v2"
    installed.parent.mkdir(parents=True)
    installed.symlink_to(minilm_path, target_is_directory=True)
    monkeypatch.setenv("T2I_LAB_HOME", str(tmp_path))
    encoder = ex.mpnet()
    assert encoder.name == "mpnet"
    assert Path(encoder.source) == installed
    explicit = ex.mpnet(path=minilm_path)
    assert explicit.source == minilm_path and explicit.dim == _pooling_dim(minilm_path)
