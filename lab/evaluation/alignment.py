"""R-precision: does a generated image show what its caption says, on any data?

(On the synthetic flowers `lab.evaluation.quality` reads the four attributes directly.)

- R-precision (as in AttnGAN): a small image-text matcher, trained by
  the lab on the real training images, ranks the image's own caption against
  99 other captions; the score is how often it ranks first. The matcher always
  uses the same text encoder (MiniLM), so runs with different encoders are
  judged by the same ruler.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lab.files import atomic_save, load_cache
from lab.pixels import to_float

MATCHER_STEPS = 400
MATCHER_SIZE = 32  # colour, petal count and shape survive at 32px, and it keeps the matcher cheap on a CPU


class Matcher(nn.Module):
    """Dual encoder: a small CNN for images, an MLP for caption embeddings, cosine similarity in a shared space."""

    def __init__(self, text_dim: int, dim: int = 128, width: int = 16):
        super().__init__()
        layers: list[nn.Module] = []
        channels = [3, width, width * 2, width * 4]  # 32 -> 16 -> 8 -> 4 pixels
        for c_in, c_out in zip(channels, channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)]
        self.image_tower = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels[-1], dim))
        self.text_tower = nn.Sequential(nn.Linear(text_dim, 256), nn.ReLU(inplace=True), nn.Linear(256, dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's learned temperature

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 3, S, S] -> unit vectors [N, dim]."""
        small = F.interpolate(to_float(images), size=MATCHER_SIZE, mode="area")
        return F.normalize(self.image_tower(small), dim=-1)

    def embed_texts(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_tower(embeddings), dim=-1)


def train_matcher(
    images: torch.Tensor,
    embeddings: torch.Tensor,
    caption_image: torch.Tensor,
    steps: int = MATCHER_STEPS,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> Matcher:
    """Contrastive (CLIP) training on real (image, caption) pairs: each caption must pick its image in the batch."""
    torch.manual_seed(seed)
    matcher = Matcher(embeddings.shape[1])
    opt = torch.optim.Adam(matcher.parameters(), lr=1e-3)
    rng = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(steps), desc="training the image-text matcher (once)", disable=not progress, unit="step"):
        idx = torch.randint(0, len(embeddings), (min(batch_size, len(embeddings)),), generator=rng)
        flip = torch.rand(len(idx), generator=rng) < 0.5  # mirrored flowers are the same flowers
        batch = images[caption_image[idx]]
        batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
        logits = matcher.logit_scale.exp() * matcher.embed_images(batch) @ matcher.embed_texts(embeddings[idx]).T
        target = torch.arange(len(idx))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return matcher.eval()


def cached_matcher(
    images: torch.Tensor,
    embeddings: torch.Tensor,
    caption_image: torch.Tensor,
    key: str,
    cache_dir: Path,
    steps: int = MATCHER_STEPS,
    progress: bool = True,
) -> Matcher:
    """A matcher trained once per (training images, captions, text encoder, steps); `key` names the encoder."""
    digest = hashlib.sha1(f"{key}|{steps}".encode())
    for tensor in (images, embeddings, caption_image):
        digest.update(tensor.contiguous().numpy().tobytes())
    cache = cache_dir / "matcher" / f"{digest.hexdigest()[:16]}.pt"
    matcher = Matcher(embeddings.shape[1])

    def fits(state: dict) -> bool:
        matcher.load_state_dict(state)  # strict: raises on foreign names or shapes
        return True

    if load_cache(cache, fits) is not None:
        return matcher.eval()
    matcher = train_matcher(images, embeddings, caption_image, steps, progress=progress)
    atomic_save(matcher.state_dict(), cache)
    return matcher


@torch.no_grad()
def r_precision(
    matcher: Matcher,
    images: torch.Tensor,
    captions: list[str],
    text_embeddings: dict[str, torch.Tensor],
    candidates: int = 100,
    seed: int = 0,
) -> tuple[float, int]:
    """(fraction of images whose own caption outscores `candidates - 1` other captions, candidates used).

    The others are drawn from the distinct captions in `text_embeddings` that differ from the image's own.
    """
    texts = list(text_embeddings)
    k = min(candidates, len(texts))
    if k < 2:
        return float("nan"), k
    position = {t: i for i, t in enumerate(texts)}
    scores = torch.cat([matcher.embed_images(images[i : i + 256]) for i in range(0, len(images), 256)])
    scores = scores @ matcher.embed_texts(torch.stack([text_embeddings[t] for t in texts])).T  # [N, T]
    rng = torch.Generator().manual_seed(seed)
    hits = 0
    for row, caption in zip(scores, captions):
        own = position[caption]
        others = torch.randperm(len(texts) - 1, generator=rng)[: k - 1]
        others = others + (others >= own).long()  # skip the own caption
        hits += int(row[own] > row[others].max())
    return hits / max(len(captions), 1), k
