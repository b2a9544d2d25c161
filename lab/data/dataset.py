"""The Flowers dataset: cached image tensors, cached text embeddings, "wrong" images.

Both expensive steps happen once per data set and are kept on disk:
- images are decoded, converted to RGB and resized to `image_size` once, and
  stored as one uint8 tensor (keyed by file list, sizes and mtimes);
- captions are encoded once per encoder and stored by caption hash.
So epoch 2 of a run, and every later run, decodes no JPEG and encodes no text.
A cache file that cannot be read is rebuilt (with a one-line note), never trusted.

Each item is (image, embedding, text, wrong_image): `wrong_image` is a real
image of a *different* flower (a different class when the layout has classes),
the mismatched pair GAN-CLS needs. The original tutorial never produced it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from tqdm import tqdm

from lab.config import ExperimentConfig
from lab.data.captions import CaptionSet, load_captions
from lab.device import to_device_async
from lab.errors import LabError
from lab.files import atomic_save, load_cache
from lab.parts.interfaces import TextEncoder
from lab.pixels import from_pil, to_float

TEST_FRACTION = 0.1
SPLIT_SEED = 1234


SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # how PIL opens 16-bit greyscale PNG/TIFF


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB. 16-bit greyscale is scaled 65535 -> 255 first: PIL's own
    convert clips it instead, which turns nearly every 16-bit photo all white."""
    if im.mode in SIXTEEN_BIT_MODES:
        im = im.point(lambda v: v / 257 + 0.5).convert("L")  # 65535 -> 255, rounded
    return im.convert("RGB")


def decode_image(path: Path, size: int) -> tuple[torch.Tensor | None, str]:
    """Decode one image to uint8 [3, size, size]; returns (None, reason) for unreadable files."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            im = to_rgb(im).resize((size, size), Image.BICUBIC)
    except Image.DecompressionBombError:  # would need gigabytes of memory to decode
        return None, f"image over {2 * Image.MAX_IMAGE_PIXELS} pixels skipped"
    except (UnidentifiedImageError, OSError, ValueError):
        return None, "corrupt image skipped"
    return from_pil(im), "" if mode == "RGB" else f"{mode} image converted to RGB"


def load_images(
    paths: list[Path], size: int, cache_dir: Path, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor, Counter]:
    """Return (uint8 images [K, 3, size, size], kept index [K] into `paths`, counts of conversions/skips)."""
    fingerprint = hashlib.sha1(f"{size}".encode())
    for p in paths:
        stat = p.stat()
        fingerprint.update(f"{p.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    cache = cache_dir / "images" / f"{fingerprint.hexdigest()[:16]}.pt"

    def fits(blob: dict) -> bool:
        images, kept = blob["images"], blob["kept"]
        return (
            images.dtype == torch.uint8
            and images.shape[1:] == (3, size, size)
            and kept.shape == (len(images),)
            and isinstance(blob["notes"], dict)
        )

    blob = load_cache(cache, fits)
    if blob is not None:
        return blob["images"], blob["kept"], Counter(blob["notes"])
    notes: Counter = Counter()
    images, kept = [], []
    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
        results = pool.map(lambda p: decode_image(p, size), paths)
        for i, (tensor, note) in enumerate(
            tqdm(results, total=len(paths), desc=f"decoding images ({size}px, once)", disable=not progress, unit="img")
        ):
            if note:
                notes[note] += 1
            if tensor is not None:
                images.append(tensor)
                kept.append(i)
    if not images:
        raise LabError(f"none of the {len(paths)} images could be read")
    blob = {"images": torch.stack(images), "kept": torch.tensor(kept), "notes": dict(notes)}
    atomic_save(blob, cache)
    return blob["images"], blob["kept"], notes


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _embedding_part_fits(blob: dict) -> bool:
    keys, vectors = blob["keys"], blob["vectors"]
    return isinstance(keys, list) and vectors.ndim == 2 and len(vectors) == len(keys)


def _read_embedding_parts(folder: Path) -> dict[str, torch.Tensor]:
    """Every cached embedding; an unreadable part is deleted, so its captions are simply encoded again."""
    store: dict[str, torch.Tensor] = {}
    for part in sorted(folder.glob("part-*.pt")):
        blob = load_cache(part, _embedding_part_fits)
        if blob is not None:
            store.update(zip(blob["keys"], blob["vectors"]))
    return store


def embed_texts(
    encoder: TextEncoder, texts: list[str], cache_dir: Path, progress: bool = True, chunk: int = 1024
) -> torch.Tensor:
    """Embeddings [len(texts), dim], encoding only captions this encoder has never seen.

    New embeddings are appended as one small file per chunk, so an interrupted
    encode of a large caption set keeps everything finished so far.
    """
    folder = cache_dir / "embeddings" / encoder.cache_key
    store = _read_embedding_parts(folder)
    missing = sorted({text_key(t): t for t in texts if text_key(t) not in store}.items())
    if missing:
        bar = tqdm(
            total=len(missing),
            desc=f"encoding captions with {encoder.name} (once)",
            disable=not progress,
            unit="caption",
        )
        for i in range(0, len(missing), chunk):
            part = missing[i : i + chunk]
            vectors = encoder.encode([t for _, t in part]).float().cpu()
            atomic_save(
                {"keys": [k for k, _ in part], "vectors": vectors},
                folder / f"part-{len(store):08d}-{part[0][0][:8]}.pt",
            )
            store.update(zip((k for k, _ in part), vectors))
            bar.update(len(part))
        bar.close()
    if not texts:
        return torch.empty(0, encoder.dim)
    return torch.stack([store[text_key(t)] for t in texts]).float()


SPLITS = ("train", "test", "all")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise LabError(f"split must be 'train', 'test' or 'all', got '{split}'")


def split_indices(n: int, split: str) -> list[int]:
    """A fixed, seeded 90/10 image split so train and test never share a flower (for data without class files)."""
    _check_split(split)
    if split == "all":
        return list(range(n))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    n_test = max(1, round(n * TEST_FRACTION)) if n > 1 else 0
    chosen = order[:n_test] if split == "test" else order[n_test:]
    return sorted(chosen)


def split_items(captions: CaptionSet, split: str) -> list[int]:
    """Indices of `captions.items` in `split`: by the class files when the data has them (the standard
    protocol: train on train+val classes, test on unseen classes), else the seeded 90/10 image split."""
    _check_split(split)
    if captions.class_split is None or split == "all":
        return split_indices(len(captions.items), split)
    labels = captions.class_split.train if split == "train" else captions.class_split.test
    return [i for i, item in enumerate(captions.items) if item.label in labels]


def split_protocol(captions: CaptionSet, split: str) -> str:
    """One line saying which images `split` holds, and by which rule (for eval.json's protocol)."""
    _check_split(split)
    if split == "all":
        return "all images"
    classes = captions.class_split
    if classes is None:
        share = f"{round(TEST_FRACTION * 100)}%" if split == "test" else f"{round((1 - TEST_FRACTION) * 100)}%"
        return f"{split}: a fixed seeded {share} of images (seed {SPLIT_SEED}; no class files)"
    if split == "test":
        return f"test: the {len(classes.test)} classes of {' + '.join(classes.test_files)}, unseen in training (standard class split)"
    return f"train: the {len(classes.train)} classes of {' + '.join(classes.train_files)} (standard class split)"


def photo_augmentation(config: ExperimentConfig) -> bool:
    """Whether training images get random crops and flips: `augment_photos`, where "auto" means on for
    photos and off for the synthetic set (evaluation reads its flowers' attributes, drawn centred)."""
    if config.augment_photos == "auto":
        return not (Path(config.data_dir) / "attributes.json").is_file()
    return config.augment_photos == "on"


def crop_source_size(config: ExperimentConfig) -> int:
    """The side training crops are cut from: `crop_scale` x `image_size` (76 for 64, as in StackGAN)."""
    return round(config.crop_scale * config.image_size)


class FlowersDataset(Dataset):
    """One item per caption: (image, embedding, text, wrong_image) with images in [-1, 1].

    `__getitems__` serves a whole batch with tensor indexing, so the DataLoader
    does no per-item Python work. `generator` drives the wrong-image draws and
    the augmentation; the trainer owns and checkpoints it so a resumed run
    draws the same ones.

    With `crop_source` (the same images cached larger, uint8 [K, 3, L, L]),
    every served image, the wrong one too, is a random `image_size` crop of
    it, mirrored half of the time. `images` stays the full view at
    `image_size`: what evaluation compares against.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        embeddings: torch.Tensor,
        texts: list[str],
        caption_image: torch.Tensor,
        crop_source: torch.Tensor | None = None,
    ):
        self.images, self.labels, self.embeddings = images, labels, embeddings
        self.texts, self.caption_image = texts, caption_image
        self.crop_source = crop_source
        self.generator = torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        return len(self.texts)

    def to(self, device: torch.device) -> FlowersDataset:
        """Keep images and embeddings on the training device (a GPU holds all of Flowers easily);
        indices and labels stay on the CPU with the generator that draws them."""
        shared = self.crop_source is self.images  # flips only (crop_scale 1): one tensor, moved once
        self.images, self.embeddings = self.images.to(device), self.embeddings.to(device)
        if self.crop_source is not None:
            self.crop_source = self.images if shared else self.crop_source.to(device)
        return self

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def wrong_indices(self, image_idx: torch.Tensor) -> torch.Tensor:
        """For each image index, a different image (of a different class where classes are known)."""
        n = len(self.images)
        if n < 2:
            raise LabError("a data set needs at least 2 images to draw mismatched ('wrong') pairs")
        wrong = (image_idx + torch.randint(1, n, image_idx.shape, generator=self.generator)) % n
        if (self.labels >= 0).all() and len(self.labels.unique()) > 1:
            for _ in range(100):  # redraw same-class picks; converges fast with many classes
                same = self.labels[wrong] == self.labels[image_idx]
                if not same.any():
                    break
                wrong[same] = (image_idx[same] + torch.randint(1, n, (int(same.sum()),), generator=self.generator)) % n
        return wrong

    def pixels(self, image_idx: torch.Tensor) -> torch.Tensor:
        """uint8 images [N, 3, S, S]: the cached ones, or with `crop_source` a random crop of each, mirrored
        with probability 1/2. One gather on the uint8 cache (crop and flip are just its indices), so
        augmentation decodes nothing and costs a fraction of a millisecond per batch."""
        if self.crop_source is None:
            return self.images[image_idx]
        n, size, device = len(image_idx), self.image_size, self.crop_source.device
        top, left = torch.randint(0, self.crop_source.shape[-1] - size + 1, (2, n, 1), generator=self.generator)
        flip = torch.rand(n, 1, generator=self.generator) < 0.5
        steps = torch.arange(size)
        rows = top + steps
        cols = left + torch.where(flip, steps.flip(0), steps)
        channels, rows, cols = (to_device_async(i, device) for i in (torch.arange(3), rows, cols))
        return self.crop_source[
            image_idx[:, None, None, None],
            channels[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]

    def __getitems__(self, indices: list[int]) -> dict:
        """One batch. Indices are drawn on the CPU and moved to the data's device before they pick from it."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        image_idx = self.caption_image[idx]
        wrong_idx = self.wrong_indices(image_idx)
        device = self.images.device
        return {
            "image": to_float(self.pixels(to_device_async(image_idx, device))),
            "embedding": self.embeddings[to_device_async(idx, device)],
            "text": [self.texts[i] for i in indices],
            "wrong_image": to_float(self.pixels(to_device_async(wrong_idx, device))),
            "index": idx,
        }

    def __getitem__(self, index: int) -> dict:
        batch = self.__getitems__([index])
        return {k: v[0] for k, v in batch.items()}


def ensure_data(config: ExperimentConfig, progress: bool = True) -> Path:
    """The data folder; the default synthetic set is drawn on first use so the lab runs offline.

    It is drawn beside its place and moved there when complete: a draw cut short (Ctrl-C, a full disk)
    never leaves a partial set that the next run would train on; the next run draws it again."""
    root = Path(config.data_dir)
    if not root.exists() and root == Path(ExperimentConfig.data_dir):
        from lab.data.synthetic import generate

        partial = root.with_name(f".{root.name}.drawing")
        shutil.rmtree(partial, ignore_errors=True)  # what an interrupted draw left
        generate(partial, config.synthetic_images, progress=progress)
        os.replace(partial, root)
    return root


def build_dataset(
    config: ExperimentConfig, encoder: TextEncoder, progress: bool = True
) -> tuple[FlowersDataset, CaptionSet]:
    """Load captions and images of the configured split and encode the captions (all cached).

    With photo augmentation the images are also cached at `crop_source_size`, the source of the crops."""
    captions = load_captions(ensure_data(config, progress), config.captions)
    items = [captions.items[i] for i in split_items(captions, config.split)]
    if not items:
        raise LabError(f"the {config.split} split of {config.data_dir} holds no images")
    if config.max_images:
        items = items[: config.max_images]
    cache_dir = Path(config.cache_dir)
    images, kept, notes = load_images([it.image_path for it in items], config.image_size, cache_dir, progress)
    captions.skipped.update(notes)
    items = [items[i] for i in kept.tolist()]
    texts = [t for it in items for t in it.captions]
    caption_image = torch.tensor([i for i, it in enumerate(items) for _ in it.captions])
    labels = torch.tensor([it.label for it in items])
    embeddings = embed_texts(encoder, texts, cache_dir, progress)
    crop_source = None
    if photo_augmentation(config):
        crop_source = images
        if crop_source_size(config) != config.image_size:
            crop_source, crop_kept, _ = load_images(
                [it.image_path for it in items], crop_source_size(config), cache_dir, progress
            )
            if len(crop_kept) != len(items):  # a file changed between the two reads
                raise LabError(f"images in {config.data_dir} changed while being read; run again")
    return FlowersDataset(images, labels, embeddings, texts, caption_image, crop_source), captions
