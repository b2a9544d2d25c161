"""Writing files so that an interruption never leaves a half-written one.

Every file the lab writes for later (checkpoints, caches, run config, plots)
goes through `atomic_write`: write to a temp name beside the target, then
rename, which is atomic on one file system.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import torch


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(temp_path)`, then rename onto `path`: an interrupted write never leaves a broken file.

    The temp name keeps the suffix, for writers that pick the format from it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def atomic_save(obj: object, path: Path) -> None:
    """torch.save, atomically."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def write_json(obj: dict, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2)))
