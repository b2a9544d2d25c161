"""`lab eval`: FID, KID, Inception Score and text-image alignment of a trained run.

Protocol (also written into `eval.json`, so every number carries how it was made):
- captions: `n` captions drawn (seeded) from all captions of the chosen split's
  images; each gets one generated image with its own noise vector;
- real images: every image of that split, at the run's `image_size`, the
  resolution the generator was trained to imitate;
- both sides are uint8, resized to 299x299 with TF1 bilinear and fed to the
  standard TF-2015 FID Inception (see `lab.fid`); real features are cached;
- alignment: petal-colour accuracy (synthetic flowers only) and R-precision
  with the lab's matcher; both also measured on the real images of the same
  captions, which is the best score to expect.
FID and KID from a few hundred images are biased upwards and noisy (published
numbers use 30k-50k); compare runs evaluated with the same protocol only.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from . import alignment
from .config import ExperimentConfig, apply
from .data import FlowersDataset, build_dataset, embed_texts
from .device import resolve_device
from .errors import LabError
from .fid import PROTOCOL, InceptionFeatures, cached_features, extract_features, fid_kid
from .files import write_json
from .interfaces import TextEncoder
from .models import load_encoder
from .pipeline import Pipeline

DEFAULT_N = 500
MATCHER_ENCODER = "minilm"  # one fixed ruler for R-precision, whatever encoder a run uses
R_CANDIDATES = 100
EVAL_JSON, EVAL_PNG = "eval.json", "eval.png"


def pick_captions(n_captions: int, n: int, seed: int) -> torch.Tensor:
    """`n` caption indices: a seeded shuffle of all captions, repeated when `n` exceeds them."""
    order = torch.randperm(n_captions, generator=torch.Generator().manual_seed(seed))
    return order.repeat(math.ceil(n / n_captions))[:n]


def inception_score(images: torch.Tensor, device: str, batch_size: int, progress: bool = True) -> dict:
    """IS with torchmetrics, which needs torch-fidelity's Inception classifier (the offline FID graph has no logits).

    Returns {"mean", "std"} or {"unavailable": reason}; never a number made up from other features.
    """
    try:
        from torchmetrics.image.inception import InceptionScore

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*will save all extracted features")
            metric = InceptionScore(splits=min(10, len(images))).to(device)
    except ImportError:
        return {"unavailable": "torch-fidelity is not installed (pip install torch-fidelity; it downloads its Inception weights from GitHub on first use)"}
    except Exception as e:  # torch-fidelity fetches weights on first use; offline that fails in many ways
        return {"unavailable": f"torch-fidelity's Inception weights could not be loaded ({str(e).splitlines()[0][:200]})"}
    for i in tqdm(range(0, len(images), batch_size), desc="Inception Score", disable=not progress, unit="batch"):
        metric.update(images[i : i + batch_size].to(device))
    mean, std = metric.compute()
    return {"mean": float(mean), "std": float(std)}


def alignment_scores(config: ExperimentConfig, dataset: FlowersDataset, idx: torch.Tensor, fake: torch.Tensor, matcher_steps: int, progress: bool = True) -> dict:
    """Petal-colour accuracy and R-precision of generated images, next to the same scores of the real images."""
    captions = [dataset.texts[i] for i in idx.tolist()]
    real = dataset.images[dataset.caption_image[idx]]
    out: dict = {}
    colours = alignment.caption_colours(config.data_dir)
    if colours is None:
        out["attribute_accuracy"] = {"unavailable": "no attributes.json: petal colours are only known for the synthetic flowers"}
    else:
        out["attribute_accuracy"] = {"generated": alignment.attribute_accuracy(fake, captions, colours), "real": alignment.attribute_accuracy(real, captions, colours)}
    try:
        encoder = load_encoder(apply(config, {"encoder": MATCHER_ENCODER, "encoder_path": ""}))
    except LabError as e:
        out["r_precision"] = {"unavailable": f"the matcher's text encoder is missing: {e}"}
        return out
    matcher, train_images = train_split_matcher(config, encoder, matcher_steps, progress)
    texts = list(dict.fromkeys(dataset.texts))
    embeddings = dict(zip(texts, embed_texts(encoder, texts, Path(config.cache_dir), progress)))
    generated, k = alignment.r_precision(matcher, fake, captions, embeddings, R_CANDIDATES)
    real_score, _ = alignment.r_precision(matcher, real, captions, embeddings, R_CANDIDATES)
    out["r_precision"] = {"generated": generated, "real": real_score, "candidates": k, "matcher": f"{MATCHER_ENCODER} text, trained on {train_images} train-split images"}
    return out


def train_split_matcher(config: ExperimentConfig, encoder: TextEncoder, steps: int, progress: bool = True) -> tuple[alignment.Matcher, int]:
    """The matcher for this data set, trained (once, cached) on the train split's images and all their captions."""
    train_config = apply(config, {"split": "train", "captions": "all", "encoder": MATCHER_ENCODER, "encoder_path": ""})
    data, _ = build_dataset(train_config, encoder, progress)
    matcher = alignment.cached_matcher(data.images, data.embeddings, data.caption_image, encoder.cache_key, Path(config.cache_dir), steps, progress)
    return matcher, len(data.images)


def evaluate(
    run_dir: str | Path,
    n: int = DEFAULT_N,
    split: str = "test",
    seed: int = 0,
    batch_size: int = 32,
    device: str = "auto",
    matcher_steps: int = alignment.MATCHER_STEPS,
    progress: bool = True,
) -> dict:
    """Score a run, write `eval.json` and `eval.png` into its directory, and return the scores."""
    if n < 2:
        raise LabError(f"--n must be at least 2 (FID needs two images), got {n}")
    device = resolve_device(device)
    pipe = Pipeline.from_run(run_dir, device, batch_size=batch_size)
    run = pipe.run
    config = apply(run.config, {"split": split, "captions": "all"})
    dataset, _ = build_dataset(config, pipe.encoder, progress)
    if len(dataset.images) < 2:
        raise LabError(f"the {split} split has {len(dataset.images)} image(s); FID needs at least 2")
    idx = pick_captions(len(dataset.texts), n, seed)
    fake = pipe.one_each(dataset.embeddings[idx], seed, progress)

    extractor = InceptionFeatures().to(device)
    real_features = cached_features(extractor, dataset.images, split, Path(config.cache_dir), batch_size, progress)
    fake_features = extract_features(extractor, fake, batch_size, "Inception features, generated images", progress)
    results = {
        "run": str(run.dir),
        "epoch": run.epoch,
        "protocol": {
            "split": split,
            "real_images": len(dataset.images),
            "generated_images": n,
            "captions": f"{n} drawn with seed {seed} from the {len(dataset.texts)} captions of the split, one noise vector per image",
            "image_size": config.image_size,
            "resize": f"{config.image_size}x{config.image_size} -> 299x299, TF1 bilinear",
            "features": PROTOCOL,
        },
        **fid_kid(real_features, fake_features, seed=seed),
        "inception_score": inception_score(fake, device, batch_size, progress),
        **alignment_scores(config, dataset, idx, fake, matcher_steps, progress),
    }
    write_json(results, run.dir / EVAL_JSON)
    save_table(results, run.dir / EVAL_PNG)
    return results


def summary_rows(results: dict) -> list[tuple[str, str]]:
    """(metric, value) lines for the terminal, the PNG table and the app."""
    def paired(entry: dict, fmt: str) -> str:
        if "unavailable" in entry:
            return f"unavailable: {entry['unavailable']}"
        return f"{entry['generated']:{fmt}} (real images: {entry['real']:{fmt}})"

    score = results["inception_score"]
    rows = [
        ("FID", f"{results['fid']:.2f}"),
        ("KID", f"{results['kid_mean']:.4f} ± {results['kid_std']:.4f}"),
        ("Inception Score", f"{score['mean']:.2f} ± {score['std']:.2f}" if "mean" in score else f"unavailable: {score['unavailable']}"),
        ("petal-colour accuracy", paired(results["attribute_accuracy"], ".1%")),
    ]
    r_prec = results["r_precision"]
    rows.append((f"R-precision (1 of {r_prec.get('candidates', R_CANDIDATES)})", paired(r_prec, ".1%")))
    return rows


def save_table(results: dict, path: Path) -> None:
    """The scores and the protocol as a two-column PNG table (for reports and the app)."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocol = results["protocol"]
    rows = summary_rows(results) + [
        ("protocol", f"{protocol['generated_images']} generated vs {protocol['real_images']} real {protocol['split']} images"),
        ("resize", protocol["resize"]),
    ]
    wrapped = [(name, textwrap.wrap(value, 72)) for name, value in rows]
    lines = sum(len(value) for _, value in wrapped) + len(rows)
    fig = plt.figure(figsize=(10, 0.25 * lines + 0.6))
    step, y = 1 / (lines + 2), 1 - 1.5 / (lines + 2)
    fig.text(0.02, y + step, f"{results['run']} (epoch {results['epoch']})", weight="bold", va="center")
    for name, value in wrapped:
        y -= step
        fig.text(0.02, y, name, va="top")
        fig.text(0.3, y, "\n".join(value), va="top", family="monospace")
        y -= step * len(value)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(args) -> None:
    """`lab eval --run DIR`."""
    results = evaluate(args.run, args.n, args.split, args.seed, args.batch_size, args.device)
    protocol = results["protocol"]
    print(f"{results['run']} at epoch {results['epoch']}: {protocol['generated_images']} generated vs {protocol['real_images']} real {protocol['split']} images, {protocol['resize']}")
    for name, value in summary_rows(results):
        print(f"  {name:28s} {value}")
    print(f"wrote {Path(results['run']) / EVAL_JSON} and {EVAL_PNG}")
