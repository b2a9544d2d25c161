"""Does a generated image show what its caption says? Two measures.

- Attribute accuracy (synthetic flowers): the petal colour is read from the
  pixels (a vote of the petal ring against the palette the flowers are drawn
  from) and compared with the colour the caption names. On the real synthetic
  images this reads the colour right practically always, so a low score on
  generated images is the generator's fault, not the measure's.
- R-precision (any data, as in AttnGAN): a small image-text matcher, trained by
  the lab on the real training images, ranks the image's own caption against
  99 other captions; the score is how often it ranks first. The matcher always
  uses the same text encoder (MiniLM), so runs with different encoders are
  judged by the same ruler.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .files import atomic_save, load_cache
from .pixels import to_float
from .synthetic import BACKGROUND, CENTRE_COLOURS, LEAF, PETAL_COLOURS, captions_for

# Colours that are not petals: the leafy background and the centre colours no petal has.
# Pixels nearest to one of these cast no vote.
BACKGROUND_COLOURS = [BACKGROUND, LEAF, (20, 60, 20), (60, 130, 60), CENTRE_COLOURS["brown"], CENTRE_COLOURS["black"]]
PETAL_RING = (0.15, 0.32)  # radii, as a fraction of the image side, between the centre disc and the petal tips
MATCHER_STEPS = 400
MATCHER_SIZE = 32  # colour, petal count and shape survive at 32px, and it keeps the matcher cheap on a CPU


def petal_colours(images: torch.Tensor) -> list[str | None]:
    """Petal colour name of each uint8 image [N, 3, S, S]: the palette colour most pixels of the petal ring are nearest to.

    None when no pixel of the ring is nearer a petal colour than the background.
    """
    size = images.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    radius = ((yy - (size - 1) / 2) ** 2 + (xx - (size - 1) / 2) ** 2).sqrt() / size
    ring = (radius >= PETAL_RING[0]) & (radius <= PETAL_RING[1])
    pixels = images.float().permute(0, 2, 3, 1)[:, ring]  # [N, P, 3]
    palette = torch.tensor([*PETAL_COLOURS.values(), *BACKGROUND_COLOURS], dtype=torch.float)
    nearest = torch.cdist(pixels, palette.expand(len(pixels), -1, -1)).argmin(-1)
    votes = F.one_hot(nearest, len(palette))[..., : len(PETAL_COLOURS)].sum(1)  # [N, n_petal_colours]
    names = list(PETAL_COLOURS)
    return [names[int(v.argmax())] if v.max() > 0 else None for v in votes]


def caption_colours(data_dir: str | Path) -> dict[str, str] | None:
    """caption text -> the petal colour it names, from the synthetic set's attributes.json (None for other data)."""
    path = Path(data_dir) / "attributes.json"
    if not path.is_file():
        return None
    attributes = json.loads(path.read_text())
    return {caption: attrs["petal_colour"] for attrs in attributes.values() for caption in captions_for(attrs)}


def attribute_accuracy(images: torch.Tensor, captions: list[str], colours: dict[str, str]) -> float:
    """Fraction of images whose measured petal colour is the one their caption names."""
    measured = petal_colours(images)
    return sum(m == colours[c] for m, c in zip(measured, captions)) / max(len(captions), 1)


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
    images: torch.Tensor, embeddings: torch.Tensor, caption_image: torch.Tensor, key: str, cache_dir: Path, steps: int = MATCHER_STEPS, progress: bool = True
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
def r_precision(matcher: Matcher, images: torch.Tensor, captions: list[str], text_embeddings: dict[str, torch.Tensor], candidates: int = 100, seed: int = 0) -> tuple[float, int]:
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
