"""`lab eval --protocol stackgan`: the Oxford-102 protocol of the text-to-image literature.

StackGAN, StackGAN++, AttnGAN and DF-GAN score Flowers alike, and their numbers mean something only
under that protocol:
- a stated number of generated images (30,000 by default), one per caption drawn from the *test*
  classes (the 20 classes never seen in training), each with its own noise;
- FID against the test split's real images, at the run's resolution, both resized to 299 into the
  TF-2015 FID Inception (`lab.evaluation.fid`); when the test split holds fewer images than are
  generated, the reference is padded with their horizontal flips, as DF-GAN does;
- Inception Score from an Inception v3 *fine-tuned on the flowers* (StackGAN's), 10 splits,
  images resized to 299 bilinear and scaled to [-1, 1], as StackGAN's `inception_score.py` does.
  The ImageNet Inception gives a different, incomparable number, so without the fine-tuned
  weights the report says so in one line instead.

The lab's own protocol (`lab.evaluation.evaluate`) compares runs with each other at a few hundred
images; this one compares a run with the papers. Results go to `RUN/eval-stackgan.json`, beside
the lab's `eval.json`, which the sweep and the compare page read.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from lab.config import apply
from lab.data.dataset import build_dataset, split_protocol
from lab.device import resolve_device
from lab.errors import LabError
from lab.evaluation.evaluate import pick_captions
from lab.evaluation.fid import PROTOCOL, InceptionFeatures, cached_features, fid_kid
from lab.files import write_json
from lab.pixels import to_uint8
from lab.sample.pipeline import Pipeline, fixed_noise

NAME = "stackgan"
DEFAULT_N = 30_000
EVAL_JSON = f"eval-{NAME}.json"
IS_SPLITS, IS_SIZE = 10, 299
CHUNK = 512  # images generated, scored and dropped at a time: 30,000 at 256px would not fit in memory
PUBLISHED = {  # Oxford-102, 256x256, this protocol (StackGAN++, Zhang et al. 2018, TPAMI)
    "StackGAN": {"fid": 55.28},
    "StackGAN++": {"fid": 48.68, "inception_score": 3.26},
}
NO_WEIGHTS = (
    "not computed: the literature's IS needs an Inception v3 fine-tuned on Oxford-102 (StackGAN's); "
    "give it as TorchScript with --inception-weights FILE (docs/evaluation.md)"
)


class FlowersInception:
    """The user's flowers-fine-tuned Inception: a TorchScript module, float [N, 3, 299, 299] in [-1, 1] -> logits [N, classes]."""

    def __init__(self, path: str | Path, device: torch.device):
        path = Path(path)
        if not path.is_file():
            raise LabError(f"--inception-weights {path}: no such file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation: the format is TorchScript
                self.net = torch.jit.load(str(path), map_location=device).eval()
        except Exception as e:  # anything but TorchScript fails in its own way
            raise LabError(
                f"--inception-weights {path} is not a TorchScript module ({str(e).splitlines()[0][:120]}); "
                "save the fine-tuned network with torch.jit.script or torch.jit.trace"
            ) from None
        self.device, self.path = device, path

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 3, H, W] -> class probabilities [N, classes] (on the CPU)."""
        x = images.to(self.device).float().div(127.5).sub(1)
        x = F.interpolate(x, size=(IS_SIZE, IS_SIZE), mode="bilinear", align_corners=False)
        logits = self.net(x)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or len(logits) != len(images):
            shape = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise LabError(f"--inception-weights {self.path} should return logits [N, classes], got {shape}")
        return logits.float().softmax(1).cpu()


def inception_score(probabilities: torch.Tensor, splits: int = IS_SPLITS) -> dict:
    """IS = exp(E_x KL(p(y|x) || p(y))), mean and std over `splits` consecutive parts (StackGAN's way)."""
    parts = [p for p in probabilities.chunk(min(splits, len(probabilities))) if len(p)]
    scores = []
    for p in parts:
        kl = p * (p.clamp_min(1e-12).log() - p.mean(0, keepdim=True).clamp_min(1e-12).log())
        scores.append(kl.sum(1).mean().exp())
    scores_t = torch.stack(scores)
    return {"mean": float(scores_t.mean()), "std": float(scores_t.std(unbiased=False)), "splits": len(parts)}


def padded_reference(images: torch.Tensor, n: int) -> tuple[torch.Tensor, str]:
    """The test images, plus their mirror images when fewer than `n` (DF-GAN), and how it was made."""
    if len(images) >= n:
        return images, f"the {len(images)} test-split images"
    return torch.cat([images, images.flip(-1)]), f"the {len(images)} test-split images and their horizontal flips"


def evaluate(
    run_dir: str | Path,
    n: int = DEFAULT_N,
    seed: int = 0,
    batch_size: int = 32,
    device: str = "auto",
    precision: str = "run",
    inception_weights: str = "",
    progress: bool = True,
    trust_code: bool = False,
) -> dict:
    """Score a run by the literature's protocol; writes `RUN/eval-stackgan.json` and returns the scores."""
    if n < 2:
        raise LabError(f"--n must be at least 2 (FID needs two images), got {n}")
    if batch_size < 1:
        raise LabError(f"--batch-size must be at least 1, got {batch_size}")
    device = resolve_device(device)
    classifier = FlowersInception(inception_weights, torch.device(device)) if inception_weights else None
    pipe = Pipeline.from_run(run_dir, device, batch_size=batch_size, precision=precision, trust_code=trust_code)
    config = apply(pipe.run.config, {"split": "test", "captions": "all"})
    test, caption_set = build_dataset(config, pipe.encoder, progress)
    reference, described = padded_reference(test.images, n)
    if len(reference) < 2:
        raise LabError(f"the test split has {len(test.images)} image(s); FID needs at least 2")

    extractor = InceptionFeatures().to(device)
    real_features = cached_features(extractor, reference, "test", Path(config.cache_dir), batch_size, progress)
    picked = pick_captions(len(test.texts), n, seed)  # every test caption once before any twice
    noise = fixed_noise(n, pipe.generator.noise_dim, seed)
    features, probabilities = [], []
    for i in tqdm(range(0, n, CHUNK), desc="generating and scoring", disable=not progress, unit="chunk"):
        fake = to_uint8(pipe.render(noise[i : i + CHUNK], test.embeddings[picked[i : i + CHUNK]]))
        features += [extractor(fake[j : j + batch_size]).cpu() for j in range(0, len(fake), batch_size)]
        if classifier is not None:
            probabilities += [
                classifier.probabilities(fake[j : j + batch_size]) for j in range(0, len(fake), batch_size)
            ]
    size = config.image_size
    results = {
        "run": str(pipe.run.dir),
        "epoch": pipe.run.epoch,
        "protocol": {
            "name": NAME,
            "split_rule": split_protocol(caption_set, "test"),
            "captions": f"{n} drawn with seed {seed} from the {len(test.texts)} captions of the test split (each once before any twice); one noise vector per image",
            "generated_images": n,
            "real_images": len(reference),
            "fid_reference": described,
            "image_size": size,
            "resolution": f"{size}x{size}, generated and real (published Oxford-102 numbers are at 256x256)",
            "render_precision": pipe.precision,
            "resize": f"{size}x{size} -> 299x299, TF1 bilinear",
            "features": PROTOCOL,
            "inception_score": f"{IS_SPLITS} splits, bilinear to {IS_SIZE}x{IS_SIZE}, [-1, 1], {inception_weights}"
            if classifier
            else "not computed",
            "published": PUBLISHED,
        },
        **fid_kid(real_features, torch.cat(features), seed=seed),
        "inception_score": inception_score(torch.cat(probabilities)) if classifier else {"unavailable": NO_WEIGHTS},
    }
    write_json(results, pipe.run.dir / EVAL_JSON)
    return results


def summary_lines(results: dict) -> list[str]:
    """What the terminal shows: the protocol, the scores, and the published numbers beside them."""
    p, score = results["protocol"], results["inception_score"]
    published = "; ".join(
        f"{name} " + ", ".join(f"{'FID' if k == 'fid' else 'IS'} {v}" for k, v in scores.items())
        for name, scores in p["published"].items()
    )
    return [
        f"{results['run']} at epoch {results['epoch']}, {NAME} protocol: {p['generated_images']} generated from test-class captions vs {p['fid_reference']}, {p['resolution']}",
        f"  FID              {results['fid']:.2f}",
        f"  Inception Score  {score['mean']:.2f} ± {score['std']:.2f}"
        if "mean" in score
        else f"  Inception Score  {score['unavailable']}",
        f"  published (Oxford-102, 256px, 30,000 images): {published}",
    ]


def main(args) -> None:
    """`lab eval --run DIR --protocol stackgan [--n 30000] [--inception-weights FILE]`."""
    if args.split != "test":
        raise LabError(
            f"the {NAME} protocol scores test-class captions against the test split; drop --split {args.split}"
        )
    results = evaluate(
        args.run,
        DEFAULT_N if args.n is None else args.n,
        args.seed,
        args.batch_size,
        args.device,
        args.precision,
        args.inception_weights,
        trust_code=args.trust_code,
    )
    print("\n".join(summary_lines(results)))
    print(f"wrote {Path(results['run']) / EVAL_JSON}")
