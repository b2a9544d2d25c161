"""Run directories and checkpoints.

A run directory holds `config.json` (everything needed to rebuild the models),
`checkpoint.pt` (full training state, loaded with `weights_only=True`),
`generator.safetensors` (just G, for generation, evaluation and the app),
`metrics.jsonl`, `samples/` and `losses.png`. Every file is written to a temp
name and renamed, so an interruption never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from lab.config import ExperimentConfig, apply
from lab.errors import LabError
from lab.files import atomic_save, atomic_write, read_torch, write_json
from lab.parts.build import build_generator
from lab.parts.interfaces import Generator

CONFIG, CHECKPOINT, GENERATOR_WEIGHTS, METRICS = (
    "config.json",
    "checkpoint.pt",
    "generator.safetensors",
    "metrics.jsonl",
)


def save_run_config(run_dir: Path, config: ExperimentConfig, text_dim: int) -> None:
    """The config plus the facts a checkpoint depends on (encoder dim), checked again on load."""
    write_json({"config": config.to_dict(), "text_dim": text_dim}, run_dir / CONFIG)


def read_run_config(run_dir: str | Path) -> tuple[ExperimentConfig, int]:
    """(config, text_dim) from RUN/config.json; a damaged or edited-wrong file is a one-line error naming it."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise LabError(f"{run_dir} is not a run directory (no {CONFIG}); train one with `lab train`")
    try:
        blob = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:  # unreadable, not UTF-8, not JSON
        raise LabError(f"{path} is damaged ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("config"), dict) or type(blob.get("text_dim")) is not int:
        raise LabError(f'{path} must hold {{"config": {{...}}, "text_dim": N}} as `lab train` writes it')
    try:
        return apply(ExperimentConfig(), blob["config"]), blob["text_dim"]
    except LabError as e:
        raise LabError(f"{path}: {e}") from None


def check_compatible(run_dir: Path, text_dim: int, encoder_dim: int, saved_size: int, image_size: int) -> None:
    """Refuse to mix a checkpoint with an encoder or image size it was not trained for."""
    if text_dim != encoder_dim:
        raise LabError(
            f"checkpoint in {run_dir} expects {text_dim}-d text embeddings but the encoder gives {encoder_dim}-d"
        )
    if saved_size != image_size:
        raise LabError(f"checkpoint in {run_dir} was trained at {saved_size}px, not {image_size}px")


def save_checkpoint(run_dir: Path, state: dict, generator: torch.nn.Module) -> None:
    atomic_save(state, run_dir / CHECKPOINT)
    weights = {k: v.detach().contiguous().cpu() for k, v in generator.state_dict().items()}
    atomic_write(
        run_dir / GENERATOR_WEIGHTS, lambda tmp: tmp.write_bytes(save(weights))
    )  # Python I/O: a full disk is an OSError


def load_checkpoint(run_dir: Path) -> dict:
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise LabError(f"no checkpoint in {run_dir}; nothing to resume")
    state = read_torch(path, "checkpoint", "; restore a copy or start a new run")
    if not isinstance(state, dict):
        raise LabError(f"{path} is not a `lab train` checkpoint (holds a {type(state).__name__}, not a dict)")
    return state


def load_state_dict(module: torch.nn.Module, state: dict, what: str) -> None:
    """load_state_dict with a one-line error when shapes or names disagree."""
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise LabError(f"{what} does not match the model built from its config: {str(e).splitlines()[0]}") from None


def _metrics_line(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    # epochs are counted in whole numbers by `lab train`, in fractions by a time-limited outside loop (the benchmark's tutorial)
    return record if isinstance(record, dict) and type(record.get("epoch")) in (int, float) else None


def read_metrics(run_dir: Path) -> list[dict]:
    """One dict per logged epoch; lines that are not such a record (a write cut short) are left out with a note."""
    path = run_dir / METRICS
    if not path.is_file():
        return []
    lines = [line for line in path.read_bytes().decode("utf-8", errors="replace").splitlines() if line.strip()]
    records = [r for r in map(_metrics_line, lines) if r is not None]
    if len(records) < len(lines):
        print(f"note: {path}: left out {len(lines) - len(records)} line(s) that are not epoch records", file=sys.stderr)
    return records


@dataclass
class Run:
    """A trained run, ready to generate: its directory, config, generator and history."""

    dir: Path
    config: ExperimentConfig
    text_dim: int
    generator: Generator
    metrics: list[dict] = field(default_factory=list)

    @property
    def epoch(self) -> int:
        return self.metrics[-1]["epoch"] if self.metrics else 0


def load_run(run_dir: str | Path, device: str = "cpu") -> Run:
    run_dir = Path(run_dir)
    config, text_dim = read_run_config(run_dir)
    weights = run_dir / GENERATOR_WEIGHTS
    if not weights.is_file():
        raise LabError(f"{run_dir} has no trained generator yet ({GENERATOR_WEIGHTS} is written after the first epoch)")
    generator = build_generator(config, text_dim)
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error type for truncated or garbage files
        raise LabError(
            f"{weights} is damaged ({str(e).splitlines()[0][:120]}); restore a copy or train the run again"
        ) from None
    load_state_dict(generator, state, str(weights))
    return Run(run_dir, config, text_dim, generator.to(device).eval(), read_metrics(run_dir))
