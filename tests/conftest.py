"""Shared fixtures: a tiny synthetic flowers set, the real offline MiniLM encoder, tiny configs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.config import ExperimentConfig, apply
from lab.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synthetic"), n=24, size=64, progress=False)


@pytest.fixture(scope="session")
def minilm():
    from lab.registry import ENCODERS

    return ENCODERS.create("minilm")


@pytest.fixture
def tiny_config(tmp_path, synthetic_root):
    """A config that trains in seconds: 64px, width 8, MiniLM, batch 8."""

    def make(**overrides) -> ExperimentConfig:
        base = {
            "data_dir": str(synthetic_root), "encoder": "minilm", "generator.width": 8, "discriminator.width": 8, "batch_size": 8,
            "epochs": 2, "split": "all", "cache_dir": str(tmp_path / "cache"), "out_dir": str(tmp_path / "run"), "threads": 1,
        }
        return apply(ExperimentConfig(), {**base, **overrides})

    return make


def run_lab(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the `lab` CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, cwd=cwd or ROOT,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )
