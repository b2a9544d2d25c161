"""Shared fixtures: a tiny synthetic flowers set, the real offline MiniLM encoder, tiny configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.config import ExperimentConfig, apply
from lab.data.synthetic import generate


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synthetic"), n=24, size=64, progress=False)


@pytest.fixture(scope="session")
def minilm():
    from lab.parts.registry import ENCODERS

    return ENCODERS.create("minilm")


@pytest.fixture
def tiny_config(tmp_path, synthetic_root):
    """A config that trains in seconds: 64px, width 8, MiniLM, batch 8."""

    def make(**overrides) -> ExperimentConfig:
        base = {
            "data_dir": str(synthetic_root),
            "encoder": "minilm",
            "generator.width": 8,
            "discriminator.width": 8,
            "batch_size": 8,
            "epochs": 2,
            "split": "all",
            "cache_dir": str(tmp_path / "cache"),
            "out_dir": str(tmp_path / "run"),
            "threads": 1,
        }
        return apply(ExperimentConfig(), {**base, **overrides})

    return make
