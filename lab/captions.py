"""Find image/caption pairs on disk, in either layout the Flowers captions ship in.

- "cvpr2016" layout: `images/<name>.jpg` + `captions/<name>.txt`
- original Reed et al. layout: `jpg/image_XXXXX.jpg` + `text_c10/class_XXXXX/image_XXXXX.txt`
  (this one also gives each image its class)

Each caption file holds one caption per line (10 for Flowers). Images with no
caption file or only blank lines, caption files with no image, and entries that
are folders or broken links are skipped and counted, never silently used or lost.
Caption files that are not UTF-8 are read as Latin-1 (and counted), so accented
letters never silently become U+FFFD.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LabError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_CAPTION_CHARS = 300  # Flowers captions are < 200 chars; longer ones are cut at a word boundary


@dataclass
class CaptionedImage:
    image_path: Path
    captions: list[str]
    label: int = -1  # class index when the layout knows it


@dataclass
class CaptionSet:
    items: list[CaptionedImage]
    skipped: Counter = field(default_factory=Counter)  # reason -> count, reported to the user


def clean_caption(text: str) -> str:
    """Collapse whitespace and cut over-long captions at a word boundary ('' if blank)."""
    text = " ".join(text.split())
    if len(text) > MAX_CAPTION_CHARS:
        text = text[:MAX_CAPTION_CHARS].rsplit(" ", 1)[0]
    return text


def decode_caption_bytes(data: bytes) -> tuple[str, bool]:
    """(text, whether the Latin-1 fallback was needed): UTF-8 (BOM allowed) first, else Latin-1,
    which maps every byte to a character, so nothing is replaced."""
    try:
        return data.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return data.decode("latin-1"), True


def split_captions(text: str) -> tuple[list[str], int]:
    """Return (non-empty cleaned captions, number of lines that were cut because too long)."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    return [clean_caption(line) for line in lines], sum(len(line) > MAX_CAPTION_CHARS for line in lines)


def read_caption_file(path: Path) -> tuple[list[str], int]:
    """Return (non-empty cleaned captions, number of lines that were cut because too long)."""
    return split_captions(decode_caption_bytes(path.read_bytes())[0])


def detect_layout(root: Path) -> tuple[str, Path]:
    """Return (layout name, folder holding it); also looks one folder down (zip extracts)."""
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []:
        if (folder / "images").is_dir() and (folder / "captions").is_dir():
            return "cvpr2016", folder
        if (folder / "jpg").is_dir() and (folder / "text_c10").is_dir():
            return "original", folder
    if not root.exists():
        raise LabError(f"data folder not found: {root} (run `lab data download flowers` or `lab data synthetic {root}`)")
    raise LabError(f"{root} holds neither images/+captions/ nor jpg/+text_c10/ folders")


def _caption_files(layout: str, folder: Path) -> dict[str, tuple[Path, int]]:
    """Map image stem -> (caption file, class label)."""
    if layout == "cvpr2016":
        return {p.stem: (p, -1) for p in (folder / "captions").glob("*.txt")}
    classes = sorted(p for p in (folder / "text_c10").iterdir() if p.is_dir())
    return {p.stem: (p, label) for label, d in enumerate(classes) for p in d.glob("*.txt")}


def load_captions(root: str | Path, which: str = "first") -> CaptionSet:
    """All captioned images under `root`, with the first or all captions of each."""
    if which not in ("first", "all"):
        raise LabError(f"captions must be 'first' or 'all', got '{which}'")
    layout, folder = detect_layout(Path(root))
    image_dir = folder / ("images" if layout == "cvpr2016" else "jpg")
    entries = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    captions = _caption_files(layout, folder)
    result = CaptionSet(items=[])
    result.skipped["caption file without image"] = len(captions.keys() - {p.stem for p in entries})
    for image in entries:
        if not image.is_file():  # a folder, a dangling link or a link loop
            result.skipped["image that is a folder or broken link skipped"] += 1
            continue
        if image.stem not in captions:
            result.skipped["image without caption file"] += 1
            continue
        path, label = captions[image.stem]
        try:
            text, latin1 = decode_caption_bytes(path.read_bytes())
        except OSError:  # a folder, a dangling link, a link loop, no permission
            result.skipped["unreadable caption file skipped"] += 1
            continue
        result.skipped["caption file read as Latin-1"] += latin1
        texts, cut = split_captions(text)
        result.skipped["over-long caption cut"] += cut
        if not texts:
            result.skipped["empty caption file"] += 1
            continue
        result.items.append(CaptionedImage(image, texts[:1] if which == "first" else texts, label))
    if not result.items:
        raise LabError(f"no captioned images in {folder} ({len(entries)} images, {len(captions)} caption files)")
    result.skipped = +result.skipped  # drop zero counts
    return result
