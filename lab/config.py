"""The experiment config: one dataclass, a TOML/YAML/JSON file, `--key=value` overrides.

As in nanoGPT, every knob lives in one place and is printed into the run
directory, so a run can always be reproduced from its `config.json`.

The pluggable parts (`generator`, `discriminator`, `loss`) are tables: a
registry `name` plus the part's own settings, passed to its factory as
keyword arguments. A plugin with new settings therefore needs no change here:

    [generator]
    name = "dfgan"
    width = 32

On the command line `--generator=dfgan` picks the part and
`--generator.width=32` sets one of its settings. Everything is checked when
the config is loaded, before any data is read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from lab.errors import LabError


@dataclass
class Part:
    """A registry name plus the settings its factory takes (e.g. `width`)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


@dataclass
class Augment:
    """DiffAugment (Zhao et al. 2020) on every image D sees, real and fake, in both steps."""

    policy: str = ""  # comma-separated: "translation", "cutout", "color"; "" = off


PARTS = ("generator", "discriminator", "loss")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclass
class ExperimentConfig:
    # data
    data_dir: str = "data/synthetic-flowers"  # created on first use when it is the synthetic default
    captions: str = "first"  # "first" caption per image or "all" captions
    split: str = "train"  # "train", "test" or "all": by the class files when present (train+val / test classes), else a seeded 90/10 image split
    max_images: int = 0  # 0 = all; otherwise the first N images (quick experiments)
    synthetic_images: int = 512  # size of the synthetic set generated when data_dir is missing
    cache_dir: str = ".cache/t2i-lab"
    augment_photos: str = "auto"  # random crop + mirror of every training image (wrong ones too): "on", "off", "auto" = on unless the data has attributes.json (the synthetic set)
    crop_scale: float = (
        1.1875  # crops are cut from images cached at crop_scale x image_size (76 px for 64); 1 = flips only
    )
    # parts: registry names (or module:attribute) with their own settings
    encoder: str = "mpnet"
    encoder_path: str = ""  # local weights directory or hub name; "" = the plugin's default
    generator: Part = field(default_factory=lambda: Part("dcgan"))
    discriminator: Part = field(default_factory=lambda: Part("dcgan"))
    loss: Part = field(default_factory=lambda: Part("gan-cls"))
    augment: Augment = field(default_factory=Augment)
    image_size: int = 64  # one setting that G, D and the image cache all follow
    # optimisation
    epochs: int = 5
    time_limit: float = 0.0  # minutes of training (set-up excluded) after which the run ends early; 0 = none
    batch_size: int = 64
    lr: float = 2e-4  # G's learning rate, and D's unless lr_d is set
    lr_d: float = 0.0  # D's learning rate; 0 = same as lr
    lr_decay: bool = False  # both learning rates fall linearly to 0 as the budget (epochs or time_limit) is spent
    beta1: float = 0.5
    beta2: float = 0.999
    ema: float = 0.0  # decay of an exponential moving average of G's weights (e.g. 0.999); 0 = off
    mode_seeking: float = 0.0  # weight of MSGAN's term rewarding G for using its noise (e.g. 1.0); 0 = off
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    threads: int = 0  # torch CPU threads, 0 = torch's default
    channels_last: bool = True  # NHWC convolutions: ~1.45x faster on CPU (oneDNN), no harm on GPUs
    sync_every: int = 25  # steps between reads of the losses from the device (each read makes the host wait for the GPU), and at each epoch's end
    precision: str = "fp32"  # "auto" (bf16 autocast on GPUs with bf16, fp32 elsewhere), "bf16", "fp16" (with loss scaling), "fp32" (no autocast)
    compile: bool = False  # torch.compile G and D (tried on one step first; where it fails, one line and the run goes on uncompiled)
    log: str = ""  # "tensorboard": live curves, sample grids and the config under RUN/tb/ (pip install -e .[tensorboard]); "" = metrics.jsonl only
    # outputs
    out_dir: str = "runs/default"
    sample_every: int = 1  # epochs between sample grids
    sample_captions: str = ""  # "|"-separated; "" = the first captions of the data set

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in PARTS:
            out[name] = getattr(self, name).to_dict()
        return out

    @property
    def lr_discriminator(self) -> float:
        return self.lr_d or self.lr


# Keys that change no step's arithmetic, so a run trained with any value of them is the run the current config would
# train (up to the timing noise a `time_limit` budget has on any machine): `sync_every` only sets when the host reads
# the losses back; `log` only where the host writes them. Not `device`, `threads`, `channels_last`, `precision` or
# `compile`: other kernels, other rounding, other weights.
RESULT_NEUTRAL_KEYS: frozenset[str] = frozenset({"sync_every", "log"})


def result_settings(values: dict[str, Any]) -> dict[str, Any]:
    """A config's `to_dict()` (or a saved `config.json`'s "config") without `RESULT_NEUTRAL_KEYS`: equal for two
    configs that train the same run. A key the saved config lacks came to the lab after that run was trained, and
    counts as its default: a new key's default is always the behaviour the lab had before it (`lr_decay = false`)."""
    return {k: v for k, v in {**ExperimentConfig().to_dict(), **values}.items() if k not in RESULT_NEUTRAL_KEYS}


# Ranges checked at load time: (test, what the value must be).
RANGES: dict[str, tuple[Any, str]] = {
    "captions": (lambda v: v in ("first", "all"), "'first' or 'all'"),
    "split": (lambda v: v in ("train", "test", "all"), "'train', 'test' or 'all'"),
    "max_images": (lambda v: v == 0 or v >= 2, "0 (all) or at least 2"),
    "synthetic_images": (lambda v: v >= 2, "at least 2"),
    "augment_photos": (lambda v: v in ("auto", "on", "off"), "'auto', 'on' or 'off'"),
    "crop_scale": (lambda v: 1 <= v <= 2, "from 1 (flips only) to 2"),
    "image_size": (lambda v: v >= 16 and v & (v - 1) == 0, "a power of two, at least 16"),
    "epochs": (lambda v: v >= 1, "at least 1"),
    "time_limit": (lambda v: math.isfinite(v) and v >= 0, "0 (no limit) or a number of minutes"),
    "batch_size": (lambda v: v >= 2, "at least 2 (batch norm needs two images)"),
    "lr": (lambda v: math.isfinite(v) and v > 0, "a positive number"),
    "lr_d": (lambda v: math.isfinite(v) and v >= 0, "0 (same as lr) or a positive number"),
    "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "ema": (lambda v: 0 <= v < 1, "in [0, 1): 0 = off, e.g. 0.999"),
    "mode_seeking": (lambda v: math.isfinite(v) and v >= 0, "0 (off) or a positive weight"),
    "seed": (lambda v: 0 <= v < 2**63, "a whole number from 0 to 2**63-1"),
    "threads": (lambda v: v >= 0, "0 (torch's default) or more"),
    "sync_every": (lambda v: v >= 1, "at least 1 (1 = every step)"),
    "precision": (lambda v: v in PRECISIONS, "'auto', 'bf16', 'fp16' or 'fp32'"),
    "log": (lambda v: v in ("", "tensorboard"), "'' (metrics.jsonl only) or 'tensorboard'"),
    "sample_every": (lambda v: v >= 1, "at least 1"),
}


def _coerce(name: str, raw: Any, kind: type) -> Any:
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    text = str(raw)
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int and isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if kind in (int, float) and isinstance(raw, bool):
            raise ValueError(text)
        return kind(text)
    except (ValueError, OverflowError):
        raise LabError(f"config key '{name}' expects {kind.__name__}, got {text[:80]!r}") from None


def parse_value(text: str) -> Any:
    """A command-line value for a part setting: a TOML literal when it is one ("32", "true", "0.5"), else the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _part(name: str, value: Any, current: Part) -> Part:
    """A part from a table ({"name": ..., settings}), a bare name, or `{"setting": v}` merged into `current`."""
    if isinstance(value, Part):
        return value
    if isinstance(value, str):
        if not value.strip():
            raise LabError(f"config key '{name}' needs a registry name or module:attribute")
        return Part(value, {} if value != current.name else dict(current.options))
    if not isinstance(value, dict):
        raise LabError(f"config key '{name}' expects a name or a table, got {str(value)[:80]!r}")
    options = dict(value)
    part_name = options.pop("name", current.name)
    if not isinstance(part_name, str):
        raise LabError(f"config key '{name}.name' expects a registry name, got {part_name!r}")
    base = current.options if part_name == current.name else {}
    return Part(part_name, {**base, **options})


def apply(config: ExperimentConfig, values: dict[str, Any]) -> ExperimentConfig:
    """Return a copy of `config` with `values` set, checking names, types and ranges.

    Dotted keys set one setting of a table: `{"generator.width": 32}`."""
    if not isinstance(values, dict):
        raise LabError(f"a config must be a table of key = value, got {type(values).__name__}")
    hints = get_type_hints(ExperimentConfig)
    changes: dict[str, Any] = {}
    for key, value in values.items():
        head, _, setting = str(key).partition(".")
        if head not in hints:
            raise LabError(f"unknown config key '{key}'; see `lab train --help`")
        current = changes.get(head, getattr(config, head))
        if head in PARTS:
            changes[head] = _part(head, {setting: value} if setting else value, current)
        elif head == "augment":
            table = {setting: value} if setting else value
            if not isinstance(table, dict):
                raise LabError(
                    f"config key 'augment' expects a table like {{policy = \"translation,cutout\"}}, got {str(value)[:80]!r}"
                )
            fields = get_type_hints(Augment)
            for k, v in table.items():
                if k not in fields:
                    raise LabError(f"unknown config key 'augment.{k}'; known: {', '.join(fields)}")
                current = dataclasses.replace(current, **{k: _coerce(f"augment.{k}", v, fields[k])})
            changes[head] = current
        elif setting:
            raise LabError(f"config key '{head}' has no settings ('{key}')")
        else:
            changes[head] = _coerce(head, value, hints[head])
    for key, value in changes.items():
        if key in RANGES and not RANGES[key][0](value):
            raise LabError(f"config key '{key}' must be {RANGES[key][1]}, got {value!r}")
    if "augment" in changes:
        check_policy(changes["augment"].policy)
    return dataclasses.replace(config, **changes)


AUGMENT_POLICIES = ("color", "translation", "cutout")  # DiffAugment's transforms (lab.train.augment draws them)


def check_policy(policy: str) -> list[str]:
    """The DiffAugment policy's transform names, in order; unknown names are one clear error."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in names if p not in AUGMENT_POLICIES]
    if unknown:
        raise LabError(
            f"unknown augment policy {', '.join(map(repr, unknown))}; choose from {', '.join(AUGMENT_POLICIES)}"
        )
    return names


def read_file(path: str | Path) -> dict[str, Any]:
    """The settings in a TOML/YAML/JSON file as a dict; anything else is a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        hint = (
            "" if path.is_absolute() else " (relative paths start in the current folder: run from the repository root)"
        )
        raise LabError(f"config file not found: {path}{hint}")
    if path.suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise LabError(f"config file must be .toml, .yaml or .json: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LabError(f"{path} is not UTF-8 text (binary, or saved as UTF-16?); save it as UTF-8") from None
    except OSError as e:
        raise LabError(f"cannot read {path}: {e.strerror}") from None
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix == ".json":
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text)
            values = {} if values is None else values  # empty or comments only
    except Exception as e:  # parser errors differ per format; all are user mistakes
        raise LabError(f"cannot parse {path}: {' '.join(str(e).split())}") from None
    if not isinstance(values, dict):
        raise LabError(
            f"{path} must hold key = value settings, not {'null' if values is None else 'a ' + type(values).__name__}"
        )
    return values


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`["--epochs=3", "--generator.width=32"]` -> `{"epochs": "3", "generator.width": 32}`."""
    out: dict[str, Any] = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise LabError(f"expected --key=value, got '{arg}'")
        key, value = arg[2:].split("=", 1)
        key = key.replace("-", "_")
        out[key] = parse_value(value) if "." in key else value
    return out


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """The defaults, then the file's settings, then `--key=value` overrides. Naming another part on the
    command line drops the file's settings for the part it replaces: one note says which."""
    config = ExperimentConfig()
    if path:
        config = apply(config, read_file(path))
    values = parse_overrides(overrides or [])
    for head in PARTS:
        old, new = getattr(config, head), values.get(head)
        if isinstance(new, str) and new != old.name and old.options:
            dropped = ", ".join(f"{k}={v}" for k, v in old.options.items())
            again = " ".join(f"--{head}.{k}={v}" for k, v in old.options.items())
            print(
                f"note: --{head}={new} replaces {path}'s {head} '{old.name}' and its settings ({dropped}); "
                f"add {again} for those your part takes",
                file=sys.stderr,
            )
    return apply(config, values)
