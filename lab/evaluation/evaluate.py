"""`lab eval`: does a run make images that follow their captions, varied, and realistic?

Protocol (also written into `eval.json`, so every number carries how it was made):
- captions: on the synthetic flowers, `lab.evaluation.quality.eval_captions`: half describe
  test-split flowers, half are attribute combinations no training flower has,
  each naming all four attributes; on other data, `n` captions drawn (seeded)
  from the chosen split. Each caption gets one image with its own noise vector.
- attribute accuracy (synthetic flowers): a small classifier trained on freshly
  drawn real flowers of the set's style (classic or photo) reads petal colour,
  centre colour, petal count and petal shape back from every image; it reads
  held-out real flowers at >= 98% (classic) or >= 95% (photo) each, and the
  same captions drawn for real are scored beside the generated ones.
- diversity: how much a caption's images vary with the noise (mean pairwise
  distance at 32px over 6 noises for 32 captions), as a ratio to real drawings
  of the same attributes: 1 = as varied as real flowers, 0 = noise ignored.
- FID / KID: against every *train-split* image (hundreds, not the few test
  images), both sides uint8 at the run's size, resized to 299x299 with TF1
  bilinear into the standard TF-2015 FID Inception (see `lab.evaluation.fid`).
- precision, recall, density, coverage (k = 5 nearest neighbours, `lab.evaluation.prdc`) on
  the same Inception features and the same reference: fidelity and coverage as
  separate numbers; `memorisation_ratio` and `nearest.png` (8 generated images
  beside their 5 nearest training images) show whether G copies.
- R-precision with the lab's image-text matcher, also on the real images.
FID and KID from a few hundred images are biased upwards and noisy (published
numbers use 30k-50k); compare runs evaluated with the same protocol only. To
compare a run with the papers, `--protocol stackgan` (`lab.evaluation.literature`).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from lab.config import ExperimentConfig, apply
from lab.data.dataset import build_dataset, embed_texts, split_protocol
from lab.data.synthetic import data_style
from lab.data.weights import lab_home
from lab.device import resolve_device
from lab.errors import LabError
from lab.evaluation import alignment, prdc, quality
from lab.evaluation.fid import PROTOCOL, InceptionFeatures, cached_features, extract_features, fid_kid
from lab.files import atomic_write, write_json
from lab.parts.build import load_encoder
from lab.parts.interfaces import TextEncoder
from lab.pixels import to_uint8
from lab.plots import nearest_grid
from lab.sample.pipeline import Pipeline

DEFAULT_N = 500
MATCHER_ENCODER = "minilm"  # one fixed ruler for R-precision, whatever encoder a run uses
R_CANDIDATES = 100
DIVERSITY_CAPTIONS, DIVERSITY_NOISES = 32, 6
EVAL_JSON, EVAL_PNG, NEAREST_PNG = "eval.json", "eval.png", "nearest.png"
NEAREST_SHOWN = 8  # generated images shown beside their nearest training images


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
        return {
            "unavailable": "torch-fidelity is not installed (pip install torch-fidelity; it downloads its Inception weights from GitHub on first use)"
        }
    except Exception as e:  # torch-fidelity fetches weights on first use; offline that fails in many ways
        return {
            "unavailable": f"torch-fidelity's Inception weights could not be loaded ({str(e).splitlines()[0][:200]})"
        }
    for i in tqdm(range(0, len(images), batch_size), desc="Inception Score", disable=not progress, unit="batch"):
        metric.update(images[i : i + batch_size].to(device))
    mean, std = metric.compute()
    return {"mean": float(mean), "std": float(std)}


def manifold_scores(real: torch.Tensor, fake: torch.Tensor) -> dict:
    """Precision, recall, density, coverage and the memorisation ratio; None each where a set is too small for k."""
    if min(len(real), len(fake)) <= prdc.K:
        return dict.fromkeys(("precision", "recall", "density", "coverage", "memorisation_ratio"))
    return prdc.scores(real, fake)


def r_precision_scores(
    config: ExperimentConfig,
    captions: list[str],
    split_texts: list[str],
    fake: torch.Tensor,
    real: torch.Tensor,
    matcher_steps: int,
    progress: bool = True,
) -> dict:
    """R-precision of generated images and of real images for the same captions (candidates: these and the split's captions)."""
    try:
        encoder = load_encoder(apply(config, {"encoder": MATCHER_ENCODER, "encoder_path": ""}))
    except LabError as e:
        return {"unavailable": f"the matcher's text encoder is missing: {e}"}
    matcher, train_images = train_split_matcher(config, encoder, matcher_steps, progress)
    texts = list(dict.fromkeys([*captions, *split_texts]))
    embeddings = dict(zip(texts, embed_texts(encoder, texts, Path(config.cache_dir), progress)))
    generated, k = alignment.r_precision(matcher, fake, captions, embeddings, R_CANDIDATES)
    real_score, _ = alignment.r_precision(matcher, real, captions, embeddings, R_CANDIDATES)
    return {
        "generated": generated,
        "real": real_score,
        "candidates": k,
        "matcher": f"{MATCHER_ENCODER} text, trained on {train_images} train-split images",
    }


def attribute_scores(
    config: ExperimentConfig,
    pipe: Pipeline,
    chosen: list[quality.EvalCaption],
    fake: torch.Tensor,
    seed: int,
    progress: bool,
) -> tuple[dict, dict, torch.Tensor]:
    """(attribute accuracy, diversity, real drawings of the captions): the synthetic flowers' ruler."""
    attrs, style = [c.attrs for c in chosen], data_style(config.data_dir)
    reader = quality.load_reader(  # depends on the style's renderer only: shared by every run
        config.image_size, lab_home(), quality.reader_settings(style), progress=progress
    )
    real = quality.draw_real(attrs, config.image_size, seed, progress, style=style)
    accuracy = quality.attribute_accuracy(reader, fake, attrs)
    unseen = [i for i, c in enumerate(chosen) if c.unseen]
    accuracy["real"] = quality.attribute_accuracy(reader, real, attrs)
    if unseen:
        accuracy["unseen_combinations"] = {
            "captions": len(unseen),
            **quality.attribute_accuracy(reader, fake[unseen], [attrs[i] for i in unseen]),
        }
    accuracy["reader_held_out"], accuracy["reader_style"] = reader.held_out, style
    some = chosen[:DIVERSITY_CAPTIONS]
    varied = to_uint8(pipe([c.caption for c in some], DIVERSITY_NOISES, seed + 1))
    diversity = quality.diversity_scores(
        varied.view(len(some), DIVERSITY_NOISES, *varied.shape[1:]), [c.attrs for c in some], seed, style=style
    )
    return accuracy, diversity, real


def train_split_matcher(
    config: ExperimentConfig, encoder: TextEncoder, steps: int, progress: bool = True
) -> tuple[alignment.Matcher, int]:
    """The matcher for this data set, trained (once, cached) on the train split's images and all their captions."""
    train_config = apply(config, {"split": "train", "captions": "all", "encoder": MATCHER_ENCODER, "encoder_path": ""})
    data, _ = build_dataset(train_config, encoder, progress)
    matcher = alignment.cached_matcher(
        data.images, data.embeddings, data.caption_image, encoder.cache_key, Path(config.cache_dir), steps, progress
    )
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
    precision: str = "run",
    trust_code: bool = False,
) -> dict:
    """Score a run, write `eval.json` and `eval.png` into its directory, and return the scores."""
    if n < 2:
        raise LabError(f"--n must be at least 2 (FID needs two images), got {n}")
    if batch_size < 1:
        raise LabError(f"--batch-size must be at least 1, got {batch_size}")
    device = resolve_device(device)
    pipe = Pipeline.from_run(
        run_dir, device, batch_size=batch_size, precision=precision, trust_code=trust_code
    )  # "run": the run's own precision
    run = pipe.run
    config = apply(run.config, {"split": split, "captions": "all"})
    dataset, caption_set = build_dataset(config, pipe.encoder, progress)
    reference, _ = build_dataset(apply(config, {"split": "train"}), pipe.encoder, progress)
    if len(reference.images) < 2:
        raise LabError(f"the train split has {len(reference.images)} image(s); FID needs at least 2")
    synthetic = (Path(config.data_dir) / "attributes.json").is_file()
    if synthetic:
        chosen = quality.eval_captions(config.data_dir, n, seed)
        captions = [c.caption for c in chosen]
        embeddings = embed_texts(pipe.encoder, captions, Path(config.cache_dir), progress)
        described = f"{n} from lab.evaluation.quality.eval_captions (seed {seed}): {sum(not c.unseen for c in chosen)} describe {split}-split flowers, {sum(c.unseen for c in chosen)} are attribute combinations no train-split flower has"
    else:
        idx = pick_captions(len(dataset.texts), n, seed)
        captions, embeddings = [dataset.texts[i] for i in idx.tolist()], dataset.embeddings[idx]
        described = f"{n} drawn with seed {seed} from the {len(dataset.texts)} captions of the {split} split"
    fake = pipe.one_each(embeddings, seed, progress)

    extractor = InceptionFeatures().to(device)
    real_features = cached_features(extractor, reference.images, "train", Path(config.cache_dir), batch_size, progress)
    fake_features = extract_features(extractor, fake, batch_size, "Inception features, generated images", progress)
    results: dict = {
        "run": str(run.dir),
        "epoch": run.epoch,
        "protocol": {
            "split": split,
            "split_rule": {s: split_protocol(caption_set, s) for s in (split, "train")},
            "captions": described + "; one noise vector per image",
            "generated_images": n,
            "real_images": len(reference.images),
            "fid_reference": f"all {len(reference.images)} train-split images",
            "image_size": config.image_size,
            "render_precision": pipe.precision,
            "resize": f"{config.image_size}x{config.image_size} -> 299x299, TF1 bilinear",
            "features": PROTOCOL,
            "prdc": f"precision, recall, density, coverage with k = {prdc.K} nearest neighbours (Euclidean) on the same features and reference",
            "memorisation_ratio": "mean distance of each generated image to its nearest train-split image / the same among train-split images",
        },
        **fid_kid(real_features, fake_features, seed=seed),
        **manifold_scores(real_features, fake_features),
        "inception_score": inception_score(fake, device, batch_size, progress),
    }
    if synthetic:
        results["attribute_accuracy"], results["diversity"], real = attribute_scores(
            config, pipe, chosen, fake, seed, progress
        )
    else:
        results["attribute_accuracy"] = results["diversity"] = {
            "unavailable": "attributes are only known for the synthetic flowers (attributes.json)"
        }
        real = dataset.images[dataset.caption_image[idx]]
    results["r_precision"] = r_precision_scores(config, captions, dataset.texts, fake, real, matcher_steps, progress)
    distances, neighbours = prdc.nearest(fake_features[:NEAREST_SHOWN], real_features, min(prdc.K, len(real_features)))
    atomic_write(
        run.dir / NEAREST_PNG, nearest_grid(fake[:NEAREST_SHOWN], reference.images[neighbours], distances).save
    )
    write_json(results, run.dir / EVAL_JSON)  # last: a finished eval.json means the whole evaluation was written
    save_table(results, run.dir / EVAL_PNG)
    return results


def summary_rows(results: dict) -> list[tuple[str, str]]:
    """(metric, value) lines for the terminal, the PNG table and the app."""
    score, accuracy, diversity, r_prec = (
        results["inception_score"],
        results["attribute_accuracy"],
        results["diversity"],
        results["r_precision"],
    )
    rows = [
        ("FID", f"{results['fid']:.2f}"),
        ("KID", f"{results['kid_mean']:.4f} ± {results['kid_std']:.4f}"),
        (
            "Inception Score",
            f"{score['mean']:.2f} ± {score['std']:.2f}" if "mean" in score else f"unavailable: {score['unavailable']}",
        ),
    ]
    if results.get("precision") is not None:
        rows += [
            (f"precision / recall (k={prdc.K})", f"{results['precision']:.3f} / {results['recall']:.3f}"),
            (f"density / coverage (k={prdc.K})", f"{results['density']:.3f} / {results['coverage']:.3f}"),
            (
                "memorisation ratio",
                f"{results['memorisation_ratio']:.2f} (1 = as far from the train images as they are from each other)",
            ),
        ]
    else:
        why = (
            f"needs more than {prdc.K} generated and real images"
            if "precision" in results
            else "this eval.json predates them (run lab eval again)"
        )
        rows.append(("precision, recall, density, coverage", f"unavailable: {why}"))
    if "unavailable" in accuracy:
        rows.append(("attribute accuracy", f"unavailable: {accuracy['unavailable']}"))
    else:
        names = {**{a: a.replace("_", " ") for a in quality.ATTRIBUTES}, "all_four": "all four attributes"}
        rows += [
            (name, f"{accuracy[key]:.1%} (real images: {accuracy['real'][key]:.1%})") for key, name in names.items()
        ]
        if "unseen_combinations" in accuracy:
            unseen = accuracy["unseen_combinations"]
            rows.append(
                (
                    f"unseen combinations ({unseen['captions']})",
                    f"{unseen['mean']:.1%} mean, {unseen['all_four']:.1%} all four",
                )
            )
        rows.append(
            (
                "diversity vs real",
                f"{diversity['ratio']:.2f} ({diversity['generated']:.3f} / real {diversity['real']:.3f})",
            )
        )
    if "unavailable" in r_prec:
        rows.append(("R-precision", f"unavailable: {r_prec['unavailable']}"))
    else:
        rows.append(
            (
                f"R-precision (1 of {r_prec['candidates']})",
                f"{r_prec['generated']:.1%} (real images: {r_prec['real']:.1%})",
            )
        )
    return rows


def save_table(results: dict, path: Path) -> None:
    """The scores and the protocol as a two-column PNG table (for reports and the app)."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocol = results["protocol"]
    rows = summary_rows(results) + [
        (
            "protocol",
            f"{protocol['generated_images']} generated ({protocol['split']} captions) vs {protocol['fid_reference']}",
        ),
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
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)


def main(args) -> None:
    """`lab eval --run DIR [--protocol stackgan]`."""
    if args.protocol == "stackgan":
        from lab.evaluation import literature

        return literature.main(args)
    if args.inception_weights:
        raise LabError(
            "--inception-weights is for --protocol stackgan (the lab's protocol uses torch-fidelity's Inception)"
        )
    n = DEFAULT_N if args.n is None else args.n
    results = evaluate(
        args.run,
        n,
        args.split,
        args.seed,
        args.batch_size,
        args.device,
        precision=args.precision,
        trust_code=args.trust_code,
    )
    protocol = results["protocol"]
    print(
        f"{results['run']} at epoch {results['epoch']}: {protocol['generated_images']} generated ({protocol['split']} captions) vs {protocol['fid_reference']}, {protocol['resize']}"
    )
    for name, value in summary_rows(results):
        print(f"  {name:28s} {value}")
    print(f"wrote {Path(results['run']) / EVAL_JSON} and {EVAL_PNG}")
