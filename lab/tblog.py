"""Live curves for a long run: `log = "tensorboard"` writes RUN/tb/, read with `tensorboard --logdir runs`.

`metrics.jsonl` and the PNGs hold one line per epoch; an hours-long run on a
GPU wants its curves while it trains, in the tool the field uses. The trainer
logs, at every loss read-back (`sync_every` steps): the mean of every loss term
over those steps, images/s and both learning rates; at every sample grid, the
grid; once, the run's config as text and as hparams. The x axis is the step
count. On `--resume`, events past the checkpoint's step (written before a crash
and trained again) are dropped, so curves never double back.

TensorBoard is an optional extra: without it the run goes on, after one line
saying how to install it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

INSTALL_HINT = "log = 'tensorboard': the tensorboard package is not installed (pip install -e .[tensorboard]); training goes on without it"


def _hparams(config: dict, prefix: str = "") -> dict:
    """The config flattened to `key` / `table.key` = bool, int, float or str, what the hparams plugin shows."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_hparams(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


class TensorBoardLog:
    def __init__(self, writer):
        self.writer = writer

    @classmethod
    def open(cls, run_dir: Path, config: dict, step: int) -> TensorBoardLog | None:
        """A writer on RUN/tb/ (None, after the install hint, when tensorboard is missing). `step` > 0 on resume."""
        try:
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams
        except ImportError:
            print(INSTALL_HINT, file=sys.stderr)
            return None
        writer = SummaryWriter(
            str(run_dir / "tb"), purge_step=step + 1 if step else None
        )  # the checkpoint's own step stays
        if not step:
            writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", 0)
            for summary in hparams(
                _hparams(config), {"loss/d_loss": 0.0, "loss/g_loss": 0.0}
            ):  # metric names only: their values are the curves
                writer.file_writer.add_summary(summary)
        return cls(writer)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def image(self, tag: str, image: Image.Image, step: int) -> None:
        self.writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
