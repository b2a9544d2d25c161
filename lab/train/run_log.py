"""What a run shows while it trains: `metrics.jsonl` and `losses.png` per epoch, the sample grid, and the live
TensorBoard curves when `log = "tensorboard"`."""

from __future__ import annotations

import json
from pathlib import Path

from PIL.Image import Image

from lab.checkpoint import METRICS
from lab.files import atomic_write
from lab.plots import caption_grid, save_loss_plot
from lab.sample.pipeline import Pipeline
from lab.tblog import TensorBoardLog

SAMPLE_CAPTIONS, SAMPLES_PER_CAPTION = 6, 6


def sample_captions(chosen: str, texts: list[str], caption_image: list[int]) -> list[str]:
    """The grid's rows: the `|`-separated captions of `sample_captions`, else one caption from each of the first
    images, so rows show different flowers."""
    if chosen:
        return [c.strip() for c in chosen.split("|") if c.strip()][:SAMPLE_CAPTIONS]
    first_of_each_image = {}
    for text, image in zip(texts, caption_image):
        first_of_each_image.setdefault(image, text)
    return list(dict.fromkeys(first_of_each_image.values()))[:SAMPLE_CAPTIONS]


def write_metrics(run_dir: Path, history: list[dict[str, float]]) -> None:
    """One JSON line per completed epoch, written whole from the checkpoint's history (a kill in between never
    duplicates a line), and the loss plot."""
    atomic_write(run_dir / METRICS, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in history)))
    if history:
        save_loss_plot(history, run_dir / "losses.png")


def save_samples(run_dir: Path, pipeline: Pipeline, texts: list[str], seed: int, epoch: int) -> tuple[Path, Image]:
    """Fixed captions x fixed noise, so grids from different epochs are directly comparable."""
    images = pipeline(texts, SAMPLES_PER_CAPTION, seed=seed)
    path = run_dir / "samples" / f"epoch_{epoch:03d}.png"
    path.parent.mkdir(exist_ok=True)
    grid = caption_grid(images, texts, SAMPLES_PER_CAPTION)
    atomic_write(path, grid.save)  # a full disk is one line, and never a half-written PNG
    return path, grid


def live_losses(
    tb: TensorBoardLog, means: dict[str, float], images_per_s: float, lrs: tuple[float, float], step: int
) -> None:
    """The live curves: each loss term's mean over the steps since the last sync, images/s, both learning rates."""
    values = {f"loss/{k}": v for k, v in means.items()}
    values["speed/images_per_s"] = images_per_s
    values["lr/generator"], values["lr/discriminator"] = lrs
    tb.scalars(values, step)
