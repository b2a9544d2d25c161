"""A quality ruler for the synthetic flowers: does G draw what the caption says, and does its noise matter?

- Attribute accuracy: a small CNN (`AttributeReader`) reads all four attributes (petal colour,
  centre colour, petal count, petal shape) back from an image. It is trained once per style of
  set (`reader_settings`: classic or photo) on freshly drawn real flowers of that style (its own
  seeds, never a data set's), drawn and loaded exactly as the data pipeline delivers data-set
  images, and it must read held-out real flowers at >= 98% (classic) or >= 95% (photo) per
  attribute, so a low score on generated images is the generator's fault, not the ruler's. The
  same ruler read on fresh real drawings of the same attributes gives the score to print beside
  the generated one.
- Evaluation captions (`eval_captions`): half describe test-split flowers, half describe attribute
  combinations no train-split flower has, so the score also says whether G composes attributes it
  never saw together. Every caption names all four attributes.
- Diversity: how much one caption's images vary with the noise (mean pairwise pixel distance at low
  resolution, where position, rotation and leaves show), as a ratio to real drawings of the same
  attributes: 1 = as varied as real flowers, ~0 = G ignores its noise.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import itertools
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lab.data import synthetic
from lab.data.captions import load_captions
from lab.data.dataset import split_items
from lab.errors import LabError
from lab.files import atomic_save, load_cache
from lab.pixels import from_pil

DIVERSITY_SIZE = 32  # position, rotation and leaves still show; pixel noise and fine texture do not count as variety
# Reported attribute name -> (key in a synthetic attrs dict, the values it takes).
ATTRIBUTES = {
    "petal_colour": ("petal_colour", list(synthetic.PETAL_COLOURS)),
    "centre_colour": ("centre_colour", list(synthetic.CENTRE_COLOURS)),
    "petal_count": ("petals", list(synthetic.COUNT_WORDS)),
    "petal_shape": ("shape", list(synthetic.SHAPES)),
}


READ_SIZE = (
    32  # measured: colour, count and shape all read at 100% on held-out flowers at 32px, and it keeps training cheap
)


def conv_stack(width: int) -> nn.Sequential:
    """READ_SIZE images -> flat features [N, 4 * width * 4 * 4]: 32 -> 16 -> 8 -> 4 pixels, then one more conv."""
    layers: list[nn.Module] = []
    channels = [3, width, width * 2, width * 4, width * 4]
    for i, (c_in, c_out) in enumerate(itertools.pairwise(channels)):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        layers += [nn.MaxPool2d(2)] if i < 3 else []
    return nn.Sequential(*layers, nn.Flatten())


@dataclass(frozen=True)
class ReaderSettings:
    """How the reader is trained; every field is part of its cache key."""

    style: str = "classic"  # the synthetic style it learns to read (`lab.data.synthetic.STYLES`)
    train_images: int = 3000
    held_out_images: int = 1000
    steps: int = 400
    batch_size: int = 64
    lr: float = 3e-3
    width: int = 16
    seed: int = 1000  # attrs from seed (train) and seed + 1 (held out), pixels from seed + 10_000 and + 10_001: no data set uses these


PHOTO_TRAIN, PHOTO_STEPS = 10_000, 1500


def reader_settings(style: str) -> ReaderSettings:
    """The reader for a style: photos vary more (`lab.evaluation.bloom_reader`), so their reader
    learns from more drawings and steps."""
    synthetic.get_style(style)  # refuses unknown styles
    if style == "photo":
        return ReaderSettings(style="photo", train_images=PHOTO_TRAIN, steps=PHOTO_STEPS)
    return ReaderSettings()


def draw_real_scenes(
    attrs: list[dict],
    image_size: int,
    seed: int,
    progress: bool = False,
    desc: str = "drawing real flowers",
    style: str = "classic",
) -> tuple[torch.Tensor, list[dict]]:
    """(uint8 [N, 3, S, S], scenes): one fresh real flower of `style` per attrs dict, in a fresh scene,
    as the data pipeline would load it, and the scene it was drawn in ({} for the classic style)."""
    rng = random.Random(seed)
    drawn = [
        synthetic.draw_loaded_scene(a, image_size, rng, style=style)
        for a in tqdm(attrs, desc=desc, disable=not progress, unit="img")
    ]
    if not drawn:
        return torch.empty(0, 3, image_size, image_size, dtype=torch.uint8), []
    return torch.stack([from_pil(image) for image, _ in drawn]), [scene for _, scene in drawn]


def draw_real(
    attrs: list[dict],
    image_size: int,
    seed: int,
    progress: bool = False,
    desc: str = "drawing real flowers",
    style: str = "classic",
) -> torch.Tensor:
    """uint8 [N, 3, S, S]: `draw_real_scenes` without the scenes."""
    return draw_real_scenes(attrs, image_size, seed, progress, desc, style)[0]


def labels(attrs: list[dict]) -> torch.Tensor:
    """Long [N, 4]: the index of each attribute's value, in `ATTRIBUTES` order."""
    return torch.tensor(
        [[values.index(a[key]) for key, values in ATTRIBUTES.values()] for a in attrs], dtype=torch.long
    ).view(-1, len(ATTRIBUTES))


class AttributeReader(nn.Module):
    """Four classification heads on one small CNN; reads uint8 images of the size it was trained for.

    The features are flattened, not pooled: counting petals needs to know where things are.
    """

    def __init__(self, image_size: int, width: int = ReaderSettings.width):
        super().__init__()
        self.image_size = image_size
        self.held_out: dict[str, float] = {}  # accuracy per attribute on held-out real flowers, set when trained
        self.features = conv_stack(width)
        self.head = nn.Sequential(
            nn.Linear(width * 4 * (READ_SIZE // 8) ** 2, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, sum(len(v) for _, v in ATTRIBUTES.values())),
        )

    def check(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 3, S, S] -> float [-1, 1], or one line saying what the reader reads."""
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != self.image_size:
            raise LabError(
                f"the attribute reader reads uint8 [N, 3, {self.image_size}, {self.image_size}] images, got {images.dtype} {list(images.shape)}"
            )
        return images.float().div(127.5).sub(1.0)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 3, S, S] -> float [-1, 1] at READ_SIZE (area downsampling)."""
        return F.interpolate(self.check(images), size=READ_SIZE, mode="area")

    def read_features(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared images -> the features the heads read."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Prepared images -> one logit tensor per attribute."""
        return self.heads(self.read_features(x))

    def heads(self, features: torch.Tensor) -> list[torch.Tensor]:
        return list(self.head(features).split([len(v) for _, v in ATTRIBUTES.values()], dim=1))

    def targets(self, scenes: list[dict]) -> torch.Tensor:
        """What training needs from the drawings' scenes besides the labels: nothing for the classic set."""
        return torch.zeros(len(scenes), 0)

    def training_loss(
        self, images: torch.Tensor, y: torch.Tensor, targets: torch.Tensor, rng: torch.Generator
    ) -> torch.Tensor:
        """The summed cross-entropy of the four heads on one batch. Mirrored and quarter-turned flowers
        are the same flowers (the renderer draws every rotation), so each batch gets one of those 8
        symmetries for free."""
        batch = torch.rot90(self.prepare(images), int(torch.randint(0, 4, (1,), generator=rng)), (2, 3))
        batch = batch.flip(-1) if torch.rand(1, generator=rng) < 0.5 else batch
        return sum(F.cross_entropy(logits, y[:, j]) for j, logits in enumerate(self(batch)))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Long [N, 4]: the value index read for each attribute."""
        self.eval()
        chunks = [
            torch.stack([o.argmax(1) for o in self(self.prepare(images[i : i + batch_size].cpu()))], 1)
            for i in range(0, len(images), batch_size)
        ]
        return torch.cat(chunks) if chunks else torch.empty(0, len(ATTRIBUTES), dtype=torch.long)

    def read(self, images: torch.Tensor) -> dict[str, list]:
        """attribute -> the value read from each image (colour names, petal counts, shape names)."""
        predicted = self.predict(images)
        return {
            name: [values[i] for i in predicted[:, j].tolist()]
            for j, (name, (_, values)) in enumerate(ATTRIBUTES.items())
        }


def _random_attrs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [synthetic.random_attributes(rng) for _ in range(n)]


def new_reader(image_size: int, settings: ReaderSettings = ReaderSettings()) -> AttributeReader:
    """An untrained reader for `settings.style`: the photo style's finds its bloom first."""
    if settings.style == "photo":
        from lab.evaluation.bloom_reader import BloomReader

        return BloomReader(image_size, settings.width)
    return AttributeReader(image_size, settings.width)


def train_reader(
    image_size: int, settings: ReaderSettings = ReaderSettings(), progress: bool = True
) -> AttributeReader:
    """Train on freshly drawn real flowers of `settings.style`, then measure `held_out` on flowers drawn with another seed."""
    train_attrs = _random_attrs(settings.train_images, settings.seed)
    # pixels from their own seed: one seed for both would replay the attrs' random stream as drawing jitter
    images, scenes = draw_real_scenes(
        train_attrs,
        image_size,
        settings.seed + 10_000,
        progress,
        f"drawing {settings.style} flowers for the attribute reader ({image_size}px, once)",
        settings.style,
    )
    torch.manual_seed(settings.seed)
    reader = new_reader(image_size, settings)
    y, targets = labels(train_attrs), reader.targets(scenes)
    opt = torch.optim.AdamW(reader.parameters(), lr=settings.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=settings.steps)
    rng = torch.Generator().manual_seed(settings.seed)
    reader.train()
    for _ in tqdm(
        range(settings.steps), desc="training the attribute reader (once)", disable=not progress, unit="step"
    ):
        idx = torch.randint(0, len(images), (min(settings.batch_size, len(images)),), generator=rng)
        loss = reader.training_loss(images[idx], y[idx], targets[idx], rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
    held_attrs = _random_attrs(settings.held_out_images, settings.seed + 1)
    held = draw_real(
        held_attrs, image_size, settings.seed + 10_001, progress, "drawing held-out real flowers", settings.style
    )
    reader.held_out = {k: v for k, v in attribute_accuracy(reader, held, held_attrs).items() if k in ATTRIBUTES}
    return reader.eval()


def reader_cache_path(image_size: int, cache_dir: Path, settings: ReaderSettings = ReaderSettings()) -> Path:
    """Keyed by image size, the style's renderer source (a changed drawing is a changed data set) and the settings."""
    digest = hashlib.sha1()
    for module in synthetic.get_style(settings.style).modules:
        digest.update(inspect.getsource(importlib.import_module(module)).encode())
    digest.update(json.dumps({"image_size": image_size, **asdict(settings)}, sort_keys=True).encode())
    return Path(cache_dir) / "quality" / f"reader-{settings.style}-{image_size}px-{digest.hexdigest()[:16]}.pt"


def load_reader(
    image_size: int, cache_dir: str | Path, settings: ReaderSettings = ReaderSettings(), progress: bool = True
) -> AttributeReader:
    """The reader for `image_size` and `settings.style`, trained on first use and cached under `cache_dir/quality/`."""
    path = reader_cache_path(image_size, Path(cache_dir), settings)
    reader = new_reader(image_size, settings)
    blob = load_cache(path, lambda b: isinstance(b, dict) and reader.load_state_dict(b["weights"]) is not None)
    if blob is not None:
        reader.held_out = blob["held_out"]
        return reader.eval()
    reader = train_reader(image_size, settings, progress)
    atomic_save({"weights": reader.state_dict(), "held_out": reader.held_out}, path)
    return reader


def attribute_accuracy(reader: AttributeReader, images: torch.Tensor, attrs: list[dict]) -> dict[str, float]:
    """Fraction of images showing each attribute their attrs name, their `mean`, and `all_four` right at once."""
    if len(images) != len(attrs) or not attrs:
        raise LabError(
            f"attribute accuracy needs one attrs dict per image and at least one image, got {len(images)} images and {len(attrs)} attrs"
        )
    right = reader.predict(images) == labels(attrs)  # [N, 4]
    scores = {name: float(right[:, j].float().mean()) for j, name in enumerate(ATTRIBUTES)}
    return {**scores, "mean": sum(scores.values()) / len(scores), "all_four": float(right.all(1).float().mean())}


def combo(attrs: dict) -> tuple:
    """The attribute combination of a flower, as a hashable key."""
    return tuple(attrs[key] for key, _ in ATTRIBUTES.values())


def all_combos() -> list[dict]:
    """Every attribute combination the renderer can draw (270: the centre never has the petal colour)."""
    values = [values for _, values in ATTRIBUTES.values()]
    keys = [key for key, _ in ATTRIBUTES.values()]
    return [dict(zip(keys, v)) for v in itertools.product(*values) if v[0] != v[1]]


@dataclass(frozen=True)
class EvalCaption:
    caption: str  # names all four attributes
    attrs: dict
    unseen: bool  # True: no train-split flower has this combination


def eval_captions(data_dir: str | Path, n: int, seed: int = 0) -> list[EvalCaption]:
    """`n` evaluation captions: the first n - n // 2 describe test-split flowers, the last n // 2 combinations
    no train-split flower has (all `n` from the test split if the train split has every combination).

    Uses the lab's split (`lab.data.dataset.split_items`), so "test" and "train" mean what they mean in training. Each half is a seeded shuffle, repeated when `n` exceeds it.
    """
    path = Path(data_dir) / "attributes.json"
    if not path.is_file():
        raise LabError(
            f"no attributes.json in {data_dir}: attribute accuracy needs the synthetic flowers (`lab data synthetic DEST`)"
        )
    attributes = json.loads(path.read_text())
    captions = load_captions(data_dir)
    names = [item.image_path.stem for item in captions.items]
    missing = [name for name in names if name not in attributes]
    if missing:
        raise LabError(
            f"attributes.json in {data_dir} has no attributes for {len(missing)} captioned image(s), e.g. {missing[0]}"
        )
    test = [attributes[names[i]] for i in split_items(captions, "test")]
    seen = {combo(attributes[names[i]]) for i in split_items(captions, "train")}
    unseen = [a for a in all_combos() if combo(a) not in seen]
    if not test:
        raise LabError(f"the test split of {data_dir} is empty ({len(names)} captioned images)")
    rng = random.Random(seed)
    n_unseen = n // 2 if unseen else 0

    def pick(pool: list[dict], k: int) -> list[dict]:
        order = rng.sample(pool, len(pool))
        return [order[i % len(order)] for i in range(k)]

    chosen = [(a, False) for a in pick(test, n - n_unseen)] + [(a, True) for a in pick(unseen, n_unseen)]
    style = synthetic.data_style(data_dir)
    return [EvalCaption(synthetic.full_caption(a, style), a, flag) for a, flag in chosen]


def diversity(images: torch.Tensor) -> float:
    """Mean pairwise RMS pixel distance (pixels in [0, 1], at DIVERSITY_SIZE) among each caption's images, averaged over captions.

    `images`: uint8 [C, K, 3, S, S], K >= 2 images (different noise) for each of C captions.
    """
    if images.dim() != 5 or images.shape[1] < 2 or images.shape[0] < 1:
        raise LabError(f"diversity needs uint8 images [captions, K >= 2, 3, S, S], got {list(images.shape)}")
    c, k = images.shape[:2]
    small = F.interpolate(images.flatten(0, 1).float().div(255), size=DIVERSITY_SIZE, mode="area").view(c, k, -1)
    distances = (
        torch.cdist(small, small, compute_mode="donot_use_mm_for_euclid_dist") / small.shape[-1] ** 0.5
    )  # [C, K, K] RMS, exact 0 for equal images
    return float(distances.sum((1, 2)).mean() / (k * (k - 1)))


def diversity_scores(
    generated: torch.Tensor, attrs: list[dict], seed: int = 0, progress: bool = False, style: str = "classic"
) -> dict[str, float]:
    """{generated, real, ratio}: `diversity` of G's images [C, K, 3, S, S] for captions with these `attrs`,
    and of K fresh real drawings (of `style`) of each caption's attributes at the same size."""
    if len(attrs) != len(generated):
        raise LabError(
            f"diversity needs one attrs dict per caption, got {len(generated)} captions and {len(attrs)} attrs"
        )
    c, k, _, size, _ = generated.shape
    real = draw_real(
        [a for a in attrs for _ in range(k)], size, seed, progress, "drawing real flowers for diversity", style
    ).view(c, k, 3, size, size)
    fake_score, real_score = diversity(generated), diversity(real)
    return {"generated": fake_score, "real": real_score, "ratio": fake_score / real_score}
