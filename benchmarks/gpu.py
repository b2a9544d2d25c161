"""One GPU, under 8 minutes: images/s and peak memory of the tutorial's loop and `lab train`, and a short main job scored.

Written to be run the moment a GPU is lent, with nothing to decide then:
1. throughput rows on the same synthetic 500 px JPEGs, with the tutorial's networks (DCGAN width 64), batch 64,
   MPNet: the tutorial's loop (`benchmarks/tutorial.py`: PIL decode and resize per item, batches moved to the
   GPU as it did) and `lab train`'s loop (`benchmarks/train_throughput.py`: cached images and embeddings on the
   GPU, losses read back every `sync_every` steps), at 64 and 128 px, fp32 and bf16 autocast; `lab train` at
   `sync_every` 1 and 25 (the tutorial reads nothing back); one more row times the fused Adam the lab uses
   on CUDA against PyTorch's foreach Adam;
2. the main job (`configs/quick.toml`, precision auto) for 3 minutes of training, then `lab eval` on it.
One table on stdout, the same as JSON in OUT/gpu.json; the main job's run stays in OUT/main-job (a rerun
into the same OUT reuses it when it was trained and scored with the same settings: `"reused": true`).

    python benchmarks/gpu.py [--out runs/gpu-benchmark] [--steps 40] [--main-minutes 3]
    python benchmarks/gpu.py --smoke    # every row for 2 steps on the CPU, tiny models: the test suite runs this
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from train_throughput import lab_loop
from tutorial import TutorialDataset, train_tutorial, tutorial_config

import lab.train.trainer as lab_train
from lab.checkpoint import read_metrics
from lab.config import ExperimentConfig, apply, load
from lab.data.captions import load_captions
from lab.data.dataset import embed_texts
from lab.data.synthetic import generate
from lab.device import resolve_device
from lab.experiments.sweep import run_variant
from lab.parts.build import load_encoder

SIZES, PRECISIONS, SYNCS = (64, 128), ("fp32", "bf16"), (1, 25)
FULL = {
    "images": 512,
    "source_size": 500,
    "width": 64,
    "batch_size": 64,
    "encoder": "mpnet",
    "threads": 0,
    "eval": {"n": 500, "batch_size": 64, "seed": 0},
}
SMOKE = {
    "images": 16,
    "source_size": 64,
    "width": 8,
    "batch_size": 4,
    "encoder": "minilm",
    "threads": 1,
    "eval": {"n": 8, "batch_size": 8, "seed": 0, "matcher_steps": 10},
}


def measured(device: str, run) -> tuple[float, float | None]:
    """(what `run()` returns, its peak GPU memory in MiB; None on the CPU)."""
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    value = run()
    return value, (torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None)


def throughput_rows(base: ExperimentConfig, root: Path, tmp: Path, steps: int, device: str) -> list[dict]:
    encoder = load_encoder(base, device)
    items = load_captions(root).items
    texts = [it.captions[0] for it in items]
    items = [
        type(it)(it.image_path, it.captions[:1], it.label) for it in items
    ]  # one caption per image, as `captions = "first"`
    embeddings = dict(zip(texts, embed_texts(encoder, texts, tmp / "cache", progress=False)))
    rows = []
    for size in SIZES:
        for precision in PRECISIONS:
            config = apply(base, {"image_size": size, "precision": precision})
            dataset = TutorialDataset(items, size, embeddings)
            rate, peak = measured(
                device,
                lambda: train_tutorial(config, dataset, encoder.dim, steps=steps, device=device, precision=precision)[
                    1
                ],
            )
            rows.append(
                {
                    "loop": "tutorial",
                    "image_size": size,
                    "precision": precision,
                    "sync_every": None,
                    "images_per_s": rate,
                    "peak_mib": peak,
                }
            )
            print(f"  {rows[-1]}", file=sys.stderr, flush=True)
            for sync in SYNCS:
                run_dir = tmp / f"lab-{size}-{precision}-{sync}"
                config = apply(config, {"sync_every": sync, "out_dir": str(run_dir)})
                rate, peak = measured(device, lambda: lab_loop(config, run_dir, steps))
                rows.append(
                    {
                        "loop": "lab train",
                        "image_size": size,
                        "precision": precision,
                        "sync_every": sync,
                        "images_per_s": rate,
                        "peak_mib": peak,
                    }
                )
                print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    # The fused Adam the lab uses on CUDA against PyTorch's foreach one, at the main job's size (the same on a CPU: Adam is unchanged there).
    config = apply(
        base, {"image_size": SIZES[0], "precision": "bf16", "sync_every": 25, "out_dir": str(tmp / "lab-foreach")}
    )
    fused, lab_train.ADAM_ON_CUDA = lab_train.ADAM_ON_CUDA, {"foreach": True}
    try:
        rate, peak = measured(device, lambda: lab_loop(config, tmp / "lab-foreach", steps))
    finally:
        lab_train.ADAM_ON_CUDA = fused
    rows.append(
        {
            "loop": "lab, foreach Adam",
            "image_size": SIZES[0],
            "precision": "bf16",
            "sync_every": 25,
            "images_per_s": rate,
            "peak_mib": peak,
        }
    )
    return rows


def main_job(out: Path, minutes: float, device: str, smoke: dict | None) -> dict:
    """configs/quick.toml for `minutes` of training at precision auto (bf16 on a recent GPU), then `lab eval`."""
    overrides = [f"--out_dir={out / 'main-job'}", f"--time_limit={minutes}", f"--device={device}", "--precision=auto"]
    if smoke:
        overrides += [
            f"--data_dir={smoke['data_dir']}",
            f"--cache_dir={smoke['cache_dir']}",
            "--encoder=minilm",
            "--generator.width=8",
            "--discriminator.width=8",
            "--epochs=1",
            "--time_limit=0",
            "--split=all",
            "--threads=1",
        ]
    config = load("configs/quick.toml", overrides)
    reused = (Path(config.out_dir) / "eval.json").is_file()
    start = time.perf_counter()
    results = run_variant("main-job", config, (smoke or FULL)["eval"], force=True, progress=False)
    metrics = read_metrics(Path(config.out_dir))
    accuracy = results.get("attribute_accuracy", {})
    return {
        "reused": reused,
        "minutes_with_eval": (time.perf_counter() - start) / 60,
        "epochs": metrics[-1]["epoch"],
        "images_per_s": metrics[-1]["images_per_s"],
        "fid": results["fid"],
        "attribute_accuracy": {k: v for k, v in accuracy.items() if isinstance(v, float)},
        "diversity": results.get("diversity", {}).get("ratio"),
    }


def table(report: dict) -> str:
    lines = [
        f"{report['device']}, torch {report['torch']}; batch {report['batch_size']}, DCGAN width {report['width']}, {report['steps']} timed steps a row",
        f"{'loop':17s} {'px':>4s} {'precision':>9s} {'sync':>5s} {'images/s':>10s} {'peak MiB':>9s}",
    ]
    for r in report["rows"]:
        peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        lines.append(
            f"{r['loop']:17s} {r['image_size']:4d} {r['precision']:>9s} {r['sync_every'] or '-':>5} {r['images_per_s']:10.1f} {peak:>9s}"
        )
    for size, ratio in report["lab_vs_tutorial"].items():
        lines.append(f"lab train (best row) / tutorial fp32 at {size} px: x{ratio:.1f}")
    job = report["main_job"]
    accuracy = ", ".join(f"{k} {v:.1%}" for k, v in job["attribute_accuracy"].items())
    budget = "smoke: 1 epoch" if report["main_minutes"] is None else f"{report['main_minutes']:g} min"
    lines.append(
        f"main job ({budget}, precision auto): {job['epochs']} epochs, {job['images_per_s']:.0f} images/s, FID {job['fid']:.1f}, "
        f"diversity {job['diversity'] if job['diversity'] is None else round(job['diversity'], 2)}; {accuracy}; {job['minutes_with_eval']:.1f} min with eval"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/gpu-benchmark", help="folder for gpu.json and the main job's run")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per throughput row (after one warm-up step)")
    parser.add_argument("--main-minutes", type=float, default=3.0, help="training minutes of the main job")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every row for 2 steps on the CPU with tiny models (a check that the script runs)",
    )
    args = parser.parse_args(argv)
    settings = SMOKE if args.smoke else FULL
    device = "cpu" if args.smoke else resolve_device(args.device)
    steps = 2 if args.smoke else args.steps
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "throughput"
    root = generate(
        tmp / "flowers", settings["images"], settings["source_size"], progress=False, force=True
    )  # a rerun draws the same files again
    base = tutorial_config(
        apply(
            ExperimentConfig(),
            {
                "data_dir": str(root),
                "encoder": settings["encoder"],
                "generator.width": settings["width"],
                "discriminator.width": settings["width"],
                "batch_size": settings["batch_size"],
                "split": "all",
                "cache_dir": str(tmp / "cache"),
                "device": device,
                "threads": settings["threads"],
            },
        )
    )
    rows = throughput_rows(base, root, tmp, steps, device)
    tutorial = {
        r["image_size"]: r["images_per_s"] for r in rows if r["loop"] == "tutorial" and r["precision"] == "fp32"
    }
    best = {
        size: max(r["images_per_s"] for r in rows if r["loop"] == "lab train" and r["image_size"] == size)
        for size in SIZES
    }
    smoke = {**SMOKE, "data_dir": str(root), "cache_dir": str(tmp / "cache")} if args.smoke else None
    report = {
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "batch_size": settings["batch_size"],
        "width": settings["width"],
        "steps": steps,
        "main_minutes": None if args.smoke else args.main_minutes,
        "rows": rows,
        "lab_vs_tutorial": {size: best[size] / tutorial[size] for size in SIZES},
        "main_job": main_job(out, args.main_minutes, device, smoke),
    }
    (out / "gpu.json").write_text(json.dumps(report, indent=1) + "\n")
    print(table(report))
    print(f"wrote {out / 'gpu.json'}")
    return report


if __name__ == "__main__":
    main()
