"""Run directories and checkpoints.

A run directory holds `config.json` (everything needed to rebuild the models),
`checkpoint.pt` (full training state, loaded with `weights_only=True`),
`generator.safetensors` (just G, for generation, evaluation and the app),
`metrics.jsonl`, `samples/` and `losses.png`. Every file is written to a temp
name and renamed, so an interruption never leaves a half-written checkpoint.

A run folder is data, never code: its `config.json` may come from anyone (a
student's hand-in, a download), so loading a run (`trusted_run_config`) builds
only registered parts unless the user says `--trust-code`. A new run never
lands on files it would overwrite (`prepare_run_dir`), and a resumed run keeps
what it computes: only the budget, the learning rates and the machine may
change, and each change is recorded in its `config.json`.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from lab.config import ExperimentConfig, apply
from lab.errors import LabError
from lab.files import atomic_save, atomic_write, check_folder, os_problem, read_torch, write_json
from lab.parts.build import build_generator, code_specs
from lab.parts.interfaces import Generator
from lab.runlock import LOCK

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


def trust_flag(config: ExperimentConfig) -> str:
    """ " --trust-code" when the run names code to import (so a command the lab suggests for it works), else ""."""
    return " --trust-code" if code_specs(config) else ""


def trusted_run_config(run_dir: str | Path, trust_code: bool = False) -> tuple[ExperimentConfig, int]:
    """`read_run_config`, refused in one line when it names a part by `module:attribute` (code the lab would
    import) unless `trust_code`: nothing a run folder names is imported before this check."""
    config, text_dim = read_run_config(run_dir)
    specs = code_specs(config)
    if specs and not trust_code:
        raise LabError(
            f"{Path(run_dir) / CONFIG} names code to import ({', '.join(specs)}); a run folder is data, so only "
            "registered parts are built from it. If you trust this run (you trained it, or read that code), "
            "add --trust-code (in Python: trust_code=True); or install the part as a plugin (docs/plugins.md)"
        )
    return config, text_dim


# What `lab train` and `lab eval` write into a run folder: `--force` clears them, so a new run never sits beside
# the old run's checkpoint (a later --resume would mix the two) or scores (eval.json would describe another model).
RUN_OUTPUTS = (
    CONFIG,
    CHECKPOINT,
    GENERATOR_WEIGHTS,
    METRICS,
    "losses.png",
    "samples",
    "tb",
    "eval.json",
    "eval.png",
    "nearest.png",
    "generated",  # `lab generate`'s default output folder
)
# Settings a resumed run may change: how long it trains, its learning rates from here on, the machine and its
# kernels, and what it logs. Everything else (data, parts, batch size, seed, ...) is what the run computes.
RESUME_ADJUSTABLE = frozenset(
    {"epochs", "time_limit", "lr", "lr_d", "device", "threads", "channels_last", "precision", "compile"}
    | {"sync_every", "log", "sample_every", "sample_captions", "cache_dir"}
)


def _never_trained(run_dir: Path, held: list[str]) -> bool:
    """Whether `run_dir` holds only the config of a run stopped before its first checkpoint: nothing to lose."""
    if not set(held) <= {CONFIG, LOCK} or CONFIG not in held:
        return False
    try:
        read_run_config(run_dir)
    except LabError:  # someone's own config.json, not a run's
        return False
    return True


def prepare_run_dir(run_dir: Path, config: ExperimentConfig, resume: bool, force: bool = False) -> dict:
    """Check `run_dir` before a run starts there; returns the settings a resume changes, as {key: [old, new]}.

    A new run needs an empty or new folder (or one whose run never reached a checkpoint); any other folder is
    refused unless `force`, which clears the lab's own files there (`RUN_OUTPUTS`) and leaves the rest. A
    resume may change only `RESUME_ADJUSTABLE` settings: anything else is refused in one line."""
    if resume:
        saved, _ = read_run_config(run_dir)
        old, new = saved.to_dict(), config.to_dict()
        changed = {k: [old[k], new[k]] for k in new if old[k] != new[k]}
        fixed = {k: v for k, v in changed.items() if k not in RESUME_ADJUSTABLE}
        if fixed:
            shown = ", ".join(f"{k} ({a!r} -> {b!r})" for k, (a, b) in fixed.items())
            raise LabError(
                f"--resume {run_dir} continues the run as it was computed: {shown} cannot change; train a new run "
                f"(another --out_dir) to try that. A resume may change: {', '.join(sorted(RESUME_ADJUSTABLE))}"
            )
        return changed
    if (run_dir / CHECKPOINT).is_file() and not force:
        raise LabError(
            f"{run_dir} already holds a run; use --resume {run_dir}{trust_flag(config)} to continue it, another --out_dir, "
            "or --force to train a new run in its place (its files are deleted)"
        )
    try:
        held = [p.name for p in run_dir.iterdir()] if run_dir.is_dir() else []
    except OSError as e:
        raise LabError(f"cannot look into --out_dir {run_dir}: {os_problem(e)}") from None
    if _never_trained(run_dir, held):
        return {}
    check_folder(run_dir, "--out_dir", force, ignore=(LOCK,))
    try:
        for name in RUN_OUTPUTS:
            path = run_dir / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
    except OSError as e:
        raise LabError(f"cannot clear {run_dir} for a new run: {os_problem(e)}") from None
    return {}


def record_resume(run_dir: Path, config: ExperimentConfig, changed: dict, epoch: int, step: int) -> None:
    """Write the resumed run's settings into its config.json, with where each change took effect under "resumed"."""
    if not changed:
        return
    blob = json.loads((run_dir / CONFIG).read_bytes())  # read_run_config has checked it
    history = blob.get("resumed") if isinstance(blob.get("resumed"), list) else []
    blob.update(config=config.to_dict(), resumed=[*history, {"epoch": epoch, "step": step, "changed": changed}])
    write_json(blob, run_dir / CONFIG)


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


def load_run(run_dir: str | Path, device: str = "cpu", trust_code: bool = False) -> Run:
    """The run in `run_dir` with its generator; parts named by `module:attribute` only with `trust_code`."""
    run_dir = Path(run_dir)
    config, text_dim = trusted_run_config(run_dir, trust_code)
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
