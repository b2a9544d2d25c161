"""The quality benchmark: does the lab make images that follow their captions, and better than the tutorial did?

On the synthetic flowers, one run, in order:
1. the original tutorial's loop (`benchmarks/tutorial.py`, pre-encoded captions)
   trained for the same wall-clock time as every sweep entry, saved as a run;
2. every variant of the sweep file (`lab sweep`, same data, seed, budget);
3. the README's main job (`configs/quick.toml`) exactly as a user runs it;
each scored by `lab eval` with one protocol, then one leaderboard with every
FID as a ratio to the tutorial's, and the README targets checked.

    python benchmarks/quality.py [--sweep configs/sweep.toml] [--main configs/quick.toml] [--only NAME ...] [--force]

Runs already trained and evaluated under the sweep folder are reused, so an
interrupted benchmark continues where it stopped (delete the folder to redo).
The tutorial, the main job and the variants are checked like `lab sweep` checks
variants: a run whose settings changed since it was trained is refused, and
retrained with `--force`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tutorial import TutorialDataset, save_as_run, train_tutorial, tutorial_config

from lab import config as config_lib
from lab.checkpoint import load_checkpoint
from lab.data.captions import load_captions
from lab.data.dataset import build_dataset, embed_texts, ensure_data, split_items
from lab.data.synthetic import data_style
from lab.evaluation import quality
from lab.evaluation.evaluate import EVAL_JSON, evaluate
from lab.evaluation.fid import InceptionFeatures, cached_features, extract_features, fid_kid
from lab.experiments.sweep import collect, read_sweep, reusable, run_variant, sample_grid, sweep, write_leaderboard
from lab.parts.build import load_encoder

TARGETS = {
    "petal_colour": 0.97,
    "centre_colour": 0.90,
    "petal_shape": 0.85,
    "petal_count": 0.50,
    "diversity": 0.5,
    "fid_vs_reference": 2.0,
}


def run_tutorial(base, out_dir: Path, eval_settings: dict, force: bool) -> None:
    """The tutorial's loop for `base.time_limit` minutes on the base config's train split, evaluated like the
    variants; reused, refused or retrained like them when its run is there."""
    run_dir = out_dir / "tutorial"
    config = tutorial_config(config_lib.apply(base, {"out_dir": str(run_dir)}))
    if reusable("tutorial", config, force) and (run_dir / EVAL_JSON).is_file():
        return
    encoder = load_encoder(config)
    captions = load_captions(ensure_data(config), config.captions)
    items = [captions.items[i] for i in split_items(captions, "train")]
    texts = [t for it in items for t in it.captions]
    embeddings = dict(zip(texts, embed_texts(encoder, texts, Path(config.cache_dir))))
    dataset = TutorialDataset(items, config.image_size, embeddings, seed=config.seed)
    print(f"== tutorial == {config.time_limit:g} min of the tutorial's loop", flush=True)
    generator, rate, steps = train_tutorial(config, dataset, encoder.dim, seconds=config.time_limit * 60, warmup=0)
    save_as_run(generator, config, encoder.dim, run_dir, steps)
    (run_dir / "metrics.jsonl").write_text(
        json.dumps({"epoch": round(steps * config.batch_size / len(dataset), 2), "images_per_s": round(rate, 1)}) + "\n"
    )
    evaluate(run_dir, device=config.device, **eval_settings)
    sample_grid(run_dir, eval_settings["seed"])


def run_main_job(path: str, out_dir: Path, eval_settings: dict, force: bool) -> float:
    """The README's main job as written (its own epochs), trained unless its run is there with the same
    settings (a changed config is refused, or retrained with `force`); returns its training minutes."""
    config = config_lib.load(path, [f"--out_dir={out_dir / 'main-job'}"])
    run_variant("main-job", config, eval_settings, force, progress=True)
    return load_checkpoint(Path(config.out_dir))["train_seconds"] / 60


def real_floor(base, out_dir: Path, eval_settings: dict) -> float:
    """FID of real drawings of the evaluation captions against the same train-split reference: the best score
    this protocol can show with this many images (FID from a few hundred images is biased upwards)."""
    path = out_dir / "real_floor.json"
    if path.is_file():
        return json.loads(path.read_text())["fid"]
    chosen = quality.eval_captions(base.data_dir, eval_settings["n"], eval_settings["seed"])
    style = data_style(base.data_dir)
    real = quality.draw_real([c.attrs for c in chosen], base.image_size, eval_settings["seed"], True, style=style)
    reference, _ = build_dataset(config_lib.apply(base, {"split": "train", "captions": "all"}), load_encoder(base))
    extractor = InceptionFeatures()
    features = cached_features(extractor, reference.images, "train", Path(base.cache_dir), eval_settings["batch_size"])
    fid = fid_kid(
        features, extract_features(extractor, real, eval_settings["batch_size"], "Inception features, real drawings")
    )["fid"]
    path.write_text(json.dumps({"fid": fid, "images": len(real)}))
    return fid


def check_targets(rows: list[dict]) -> None:
    main = next((r for r in rows if r["variant"] == "main-job"), None)
    if main is None:
        return
    print("\nREADME main job against the targets:")
    for key, target in TARGETS.items():
        value = main.get(key)
        shown = "-" if value is None else f"{value:.3f}"
        print(
            f"  {key:18s} {shown:>7} (target >= {target})  {'ok' if value is not None and value >= target else 'MISSED'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="configs/sweep.toml")
    parser.add_argument("--main", default="configs/quick.toml", help="the README's main job config ('' to skip it)")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="sweep variants to run (tutorial and main job always run)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="retrain the tutorial, the main job and sweep variants whose settings changed since their runs",
    )
    args = parser.parse_args()

    out_dir, eval_settings, base, _ = read_sweep(args.sweep)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_tutorial(base, out_dir, eval_settings, args.force)
    minutes = run_main_job(args.main, out_dir, eval_settings, args.force) if args.main else None
    sweep(args.sweep, args.only, args.force, reference="tutorial")
    board = write_leaderboard(out_dir, collect(out_dir), reference="tutorial")
    print(board.read_text().split("\n\n![leaderboard]")[0])
    print(f"\nreal drawings of the same captions: FID {real_floor(base, out_dir, eval_settings):.2f}")
    if minutes is not None:  # the README's targets are the main job's, on the classic set
        print(f"main job: {minutes:.1f} min of training (set-up excluded)")
        check_targets(json.loads((out_dir / "leaderboard.json").read_text())["rows"])


if __name__ == "__main__":
    main()
