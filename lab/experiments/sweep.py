"""`lab sweep CONFIG`: train a grid of variants on the same data, seed and budget, evaluate each the same way, rank them.

A sweep file holds a `[base]` experiment config, the budget every variant
gets (`time_limit` minutes of training and/or `epochs`, in `[base]`), the
evaluation protocol and one `[variants.NAME]` table of overrides per variant:

    out_dir = "runs/sweep"
    [eval]
    n = 300
    [base]
    time_limit = 5.0
    [variants.gan-cls]
    loss = "gan-cls"
    [variants.hinge-magp]
    loss = "hinge-magp"
    discriminator = {norm = "none"}

Each variant trains into `out_dir/NAME`, then is scored by `lab eval` with one
protocol. The leaderboard (`leaderboard.md`, `leaderboard.png`,
`leaderboard.json`, and a sample grid per variant) is rewritten after each
variant. Nothing is lost on interruption: an unfinished run resumes with what
is left of its budget, and a finished, evaluated one is not redone. A
variant whose settings changed since its run is refused unless `--force`
(settings that cannot change the result, such as `sync_every`, do not count:
`config.RESULT_NEUTRAL_KEYS`).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from lab import config as config_lib
from lab.checkpoint import CHECKPOINT, CONFIG, read_metrics
from lab.config import ExperimentConfig
from lab.errors import LabError
from lab.evaluation import quality
from lab.evaluation.evaluate import EVAL_JSON, evaluate
from lab.files import atomic_write, write_json
from lab.plots import caption_grid
from lab.sample.pipeline import Pipeline

SWEEP_KEYS = {"out_dir", "eval", "base", "variants"}
EVAL_DEFAULTS = {"n": 300, "seed": 0, "split": "test", "batch_size": 64}
LEADERBOARD = "leaderboard.json"
MANIFOLD = (
    "precision",
    "recall",
    "density",
    "coverage",
)  # fidelity and coverage apart (lab.evaluation.prdc); None for older evaluations
GRID = "sweep_samples.png"
GRID_CAPTIONS = [
    "this flower has five round red petals and a yellow center.",
    "this flower has eight pointed blue petals and a black center.",
    "this flower has four round white petals and a green center.",
    "this flower has six pointed orange petals and a brown center.",
]


def read_sweep(path: str | Path) -> tuple[Path, dict[str, Any], ExperimentConfig, dict[str, ExperimentConfig]]:
    """(output folder, evaluation settings, base config, variant name -> full config), all checked before anything runs."""
    spec = config_lib.read_file(path)
    unknown = sorted(set(spec) - SWEEP_KEYS)
    if unknown:
        raise LabError(
            f"{path}: unknown sweep key(s) {', '.join(unknown)}; a sweep has {', '.join(sorted(SWEEP_KEYS))}"
        )
    variants = spec.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise LabError(f"{path}: no [variants.NAME] tables; a sweep needs at least one variant")
    eval_settings = {**EVAL_DEFAULTS, **spec.get("eval", {})}
    if set(eval_settings) - set(EVAL_DEFAULTS):
        raise LabError(f"{path}: unknown [eval] key(s) {', '.join(sorted(set(eval_settings) - set(EVAL_DEFAULTS)))}")
    out_dir = Path(spec.get("out_dir", "runs/sweep"))
    base = config_lib.apply(ExperimentConfig(), spec.get("base", {}))
    configs = {}
    for name, overrides in variants.items():
        if not name.replace("-", "").replace("_", "").isalnum():
            raise LabError(f"{path}: variant name '{name}' must be letters, digits, '-' or '_' (it names a folder)")
        try:
            configs[name] = config_lib.apply(base, {**(overrides or {}), "out_dir": str(out_dir / name)})
        except LabError as e:
            raise LabError(f"{path}: variant '{name}': {e}") from None
    return out_dir, eval_settings, base, configs


def _saved_config(run_dir: Path) -> dict | None:
    """The settings a variant's earlier run was trained with (None when there is none); a damaged file is one line."""
    path = run_dir / CONFIG
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_bytes())["config"]
    except (OSError, ValueError, LookupError, TypeError) as e:
        raise LabError(
            f"{path} is damaged ({type(e).__name__}); delete {run_dir} or pass --force to train it again"
        ) from None
    if not isinstance(saved, dict):
        raise LabError(f"{path} is damaged (no settings); delete {run_dir} or pass --force to train it again")
    return saved


def reusable(name: str, config: ExperimentConfig, force: bool) -> bool:
    """Whether `config.out_dir` holds a run trained with these settings. A run trained with other settings is
    refused with one line, or with `force` deleted so that it is trained again: never silently scored as this one."""
    run_dir = Path(config.out_dir)
    try:
        saved = _saved_config(run_dir)
    except LabError:
        if not force:
            raise
        shutil.rmtree(run_dir)  # damaged: retrained, as --force asks
        return False
    if saved is not None and config_lib.result_settings(saved) != config_lib.result_settings(config.to_dict()):
        if not force:
            raise LabError(
                f"variant '{name}' changed since {run_dir} was trained; use --force to retrain it (its run is deleted)"
            )
        shutil.rmtree(run_dir)
        return False
    return saved is not None


def run_variant(name: str, config: ExperimentConfig, eval_settings: dict, force: bool, progress: bool) -> dict:
    """Train (or resume), evaluate and draw the sample grid of one variant, each unless already done; returns its eval results."""
    from lab.train.trainer import train

    run_dir = Path(config.out_dir)
    if reusable(name, config, force) and (run_dir / EVAL_JSON).is_file():
        results = json.loads((run_dir / EVAL_JSON).read_text())
    else:
        print(f"\n== {name} ==", file=sys.stderr)
        train(config, resume=run_dir if (run_dir / CHECKPOINT).is_file() else None, progress=progress, force=force)
        # trust_code: the run was trained (or checked to match) from the sweep file the user wrote
        results = evaluate(run_dir, progress=progress, device=config.device, trust_code=True, **eval_settings)
    if not (run_dir / GRID).is_file():  # a retrained run starts from an empty folder
        sample_grid(run_dir, eval_settings["seed"])
    return results


def entry(name: str, results: dict, run_dir: Path) -> dict:
    """One leaderboard row: the numbers people compare, flat."""
    metrics = read_metrics(run_dir)
    accuracy = results.get("attribute_accuracy", {})
    return {
        "variant": name,
        "run": str(run_dir),
        "epochs": metrics[-1]["epoch"] if metrics else results.get("epoch", 0),
        "images_per_s": metrics[-1].get("images_per_s") if metrics else None,
        "fid": results["fid"],
        **{a: accuracy.get(a) for a in (*quality.ATTRIBUTES, "mean", "all_four")},
        "diversity": results.get("diversity", {}).get("ratio"),
        **{k: results.get(k) for k in MANIFOLD},
        "r_precision": results.get("r_precision", {}).get("generated"),
    }


def sample_grid(run_dir: Path, seed: int = 0) -> Path:
    """The same captions and noise for every variant, so their grids compare at a glance."""
    pipe = Pipeline.from_run(run_dir, trust_code=True)  # a variant of the sweep file, as `run_variant` checked
    path = run_dir / GRID
    atomic_write(path, caption_grid(pipe(GRID_CAPTIONS, 6, seed), GRID_CAPTIONS, 6).save)
    return path


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if kind == "pct" else f"{value:.2f}" if kind == "float" else str(value)


def write_leaderboard(out_dir: Path, rows: list[dict], reference: str = "") -> Path:
    """leaderboard.json, leaderboard.md (table + grids) and leaderboard.png (bar charts), best mean attribute accuracy first.

    With a `reference` variant (e.g. the tutorial's loop) each row also gets its FID ratio to it."""
    rows = sorted(rows, key=lambda r: (-(r["mean"] or 0), r["fid"]))
    ref = next((r for r in rows if r["variant"] == reference), None)
    for r in rows:
        r["fid_vs_reference"] = ref["fid"] / r["fid"] if ref and r["fid"] else None
    write_json({"reference": reference, "rows": rows}, out_dir / LEADERBOARD)
    columns = [
        ("variant", "str"),
        ("epochs", "str"),
        ("images_per_s", "str"),
        ("fid", "float"),
        ("petal_colour", "pct"),
        ("centre_colour", "pct"),
        ("petal_count", "pct"),
        ("petal_shape", "pct"),
        ("all_four", "pct"),
        ("diversity", "float"),
        *((k, "float") for k in MANIFOLD),
    ]
    if ref:
        columns.append(("fid_vs_reference", "float"))
    header = [c.replace("_", " ") for c, _ in columns]
    if ref:
        header[-1] = f"FID {reference} / FID"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r[c], kind) for c, kind in columns) + " |" for r in rows]
    lines += ["", "![leaderboard](leaderboard.png)", ""]
    lines += [
        f"**{r['variant']}**\n\n![{r['variant']}]({r['variant']}/{GRID})\n"
        for r in rows
        if (out_dir / r["variant"] / GRID).is_file()
    ]
    atomic_write(out_dir / "leaderboard.md", lambda tmp: tmp.write_text("\n".join(lines)))
    _bar_chart(rows, out_dir / "leaderboard.png")
    return out_dir / "leaderboard.md"


def _bar_chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["variant"] for r in rows]

    def bars(*keys: str) -> dict[str, list[float]]:
        return {k: [r[k] or 0 for r in rows] for k in keys}

    panels = [
        ("FID (lower is better)", {"fid": [r["fid"] for r in rows]}),
        ("attribute accuracy, all four", bars("all_four")),
        ("mean attribute accuracy", bars("mean")),
        ("diversity vs real (1 = as varied)", bars("diversity")),
        ("fidelity: precision, density (0-1)", bars("precision", "density")),
        ("coverage: recall, coverage (0-1)", bars("recall", "coverage")),
    ]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3 * len(panels) + 3, 0.45 * len(rows) + 1.5), sharey=True
    )  # names once, on the left
    for ax, (title, series) in zip(axes, panels):
        height = 0.8 / len(series)  # two scores side by side in one panel
        for i, (key, values) in enumerate(series.items()):
            ax.barh(
                [y + (i - (len(series) - 1) / 2) * height for y in range(len(rows))],
                values[::-1],
                height,
                label=key,
                color=["#4c72b0", "#dd8452"][i],
            )
        ax.set_yticks(range(len(rows)), names[::-1])
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        if len(series) > 1:  # the k-NN scores: on one 0-1 scale, so that zeros read as zeros (density may pass 1)
            ax.set_xlim(0, max(1.0, *(v for values in series.values() for v in values)))
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90))
    plt.close(fig)


def collect(out_dir: Path) -> list[dict]:
    """A row for every evaluated run under `out_dir`: the sweep's variants and any run added beside them (the tutorial's loop)."""
    rows = []
    for eval_path in sorted(out_dir.glob(f"*/{EVAL_JSON}")):
        rows.append(entry(eval_path.parent.name, json.loads(eval_path.read_text()), eval_path.parent))
    return rows


def sweep(
    path: str | Path, only: list[str] | None = None, force: bool = False, progress: bool = True, reference: str = ""
) -> Path:
    """Run the sweep in `path`; returns the leaderboard's Markdown file."""
    out_dir, eval_settings, _, configs = read_sweep(path)
    unknown = sorted(set(only or []) - set(configs))
    if unknown:
        raise LabError(f"no variant {', '.join(unknown)} in {path}; it has {', '.join(configs)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, config in configs.items():
        if only and name not in only:
            continue
        run_variant(name, config, eval_settings, force, progress)
        write_leaderboard(out_dir, collect(out_dir), reference)
    return write_leaderboard(out_dir, collect(out_dir), reference)


def main(args) -> None:
    """`lab sweep CONFIG [--only NAME ...] [--force]`."""
    leaderboard = sweep(args.config, args.only, args.force, progress=not args.quiet, reference=args.reference)
    print(leaderboard.read_text().split("\n\n![leaderboard]")[0])
    print(f"\nwrote {leaderboard} and {leaderboard.with_suffix('.png')}")
