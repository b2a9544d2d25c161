"""Find image/caption pairs on disk, in either layout the Flowers captions ship in.

- "cvpr2016" layout: `images/<name>.jpg` + `captions/<name>.txt`
- original Reed et al. layout: `jpg/image_XXXXX.jpg` + `text_c10/class_XXXXX/image_XXXXX.txt`
  (this one also gives each image its class, and may carry the standard class
  split: `trainclasses.txt`, `valclasses.txt`, `testclasses.txt` beside `text_c10`)

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

from lab.errors import LabError
from lab.files import os_problem

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_CAPTION_CHARS = 300  # Flowers captions are < 200 chars; longer ones are cut at a word boundary


@dataclass
class CaptionedImage:
    image_path: Path
    captions: list[str]
    label: int = -1  # class index when the layout knows it


@dataclass(frozen=True)
class ClassSplit:
    """The split papers use on Flowers: train on the train+val classes, test on the unseen test classes."""

    train: frozenset[int]  # class labels
    test: frozenset[int]
    train_files: tuple[str, ...]  # the class files each side was read from, for the protocol
    test_files: tuple[str, ...]


@dataclass
class CaptionSet:
    items: list[CaptionedImage]
    skipped: Counter = field(default_factory=Counter)  # reason -> count, reported to the user
    class_split: ClassSplit | None = None  # from the class files, when the layout has them


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


def unreadable(error: OSError, root: Path) -> LabError:
    """One line for a data folder the lab cannot read (no permission, a file where a folder should be)."""
    return LabError(f"cannot read the data in {error.filename or root}: {os_problem(error)}")


def detect_layout(root: Path) -> tuple[str, Path]:
    """Return (layout name, folder holding it); also looks one folder down (zip extracts)."""
    try:
        return _detect_layout(root)
    except OSError as e:
        raise unreadable(e, root) from None


def _detect_layout(root: Path) -> tuple[str, Path]:
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []:
        if (folder / "images").is_dir() and (folder / "captions").is_dir():
            return "cvpr2016", folder
        if (folder / "jpg").is_dir() and (folder / "text_c10").is_dir():
            return "original", folder
    if not root.exists():
        raise LabError(
            f"data folder not found: {root} (run `lab data download flowers` or `lab data synthetic {root}`)"
        )
    raise LabError(f"{root} holds neither images/+captions/ nor jpg/+text_c10/ folders")


def _class_folders(folder: Path) -> list[Path]:
    """The original layout's class folders; a class's label is its position here."""
    return sorted(p for p in (folder / "text_c10").iterdir() if p.is_dir())


def _caption_files(layout: str, folder: Path) -> dict[str, tuple[Path, int]]:
    """Map image stem -> (caption file, class label)."""
    if layout == "cvpr2016":
        return {p.stem: (p, -1) for p in (folder / "captions").glob("*.txt")}
    return {p.stem: (p, label) for label, d in enumerate(_class_folders(folder)) for p in d.glob("*.txt")}


TRAIN_CLASS_FILES = ("trainclasses.txt", "valclasses.txt", "trainvalclasses.txt")  # trainval = train + val
TEST_CLASS_FILES = ("testclasses.txt",)


def _read_class_file(path: Path, labels: dict[str, int]) -> set[int]:
    """The labels of the class names in `path` (one `class_XXXXX` per line); an unknown name is an error."""
    try:
        names = decode_caption_bytes(path.read_bytes())[0].split()
    except OSError as e:
        raise LabError(f"cannot read {path}: {e.strerror or e}") from None
    unknown = [n for n in names if n not in labels]
    if unknown:
        raise LabError(
            f"{path} names {unknown[0]!r}, which is not a folder in {path.parent / 'text_c10'} ({len(unknown)} unknown name(s))"
        )
    return {labels[n] for n in names}


def read_class_split(folder: Path) -> ClassSplit | None:
    """The standard class split from the class files beside `text_c10` (None when there are none).

    Every class folder must be on exactly one side: a class in both would let
    test flowers leak into training, a class in neither would silently drop
    its images."""
    present = [name for name in TRAIN_CLASS_FILES + TEST_CLASS_FILES if (folder / name).is_file()]
    if not present:
        return None
    train_files = tuple(n for n in present if n in TRAIN_CLASS_FILES)
    test_files = tuple(n for n in present if n in TEST_CLASS_FILES)
    if not train_files or not test_files:
        raise LabError(
            f"{folder} has {', '.join(present)} but no {'testclasses.txt' if train_files else 'trainclasses.txt or valclasses.txt'}; the class split needs both sides"
        )
    classes = _class_folders(folder)
    labels = {d.name: label for label, d in enumerate(classes)}
    train = set().union(*(_read_class_file(folder / n, labels) for n in train_files))
    test = set().union(*(_read_class_file(folder / n, labels) for n in test_files))
    both = sorted(train & test)
    if both:
        raise LabError(
            f"{classes[both[0]].name} is listed for training ({' + '.join(train_files)}) and for testing ({test_files[0]}) in {folder}"
        )
    neither = sorted(set(labels.values()) - train - test)
    if neither:
        raise LabError(
            f"{classes[neither[0]].name} is in none of {', '.join(present)} in {folder} ({len(neither)} class(es) unlisted)"
        )
    return ClassSplit(frozenset(train), frozenset(test), train_files, test_files)


def load_captions(root: str | Path, which: str = "first") -> CaptionSet:
    """All captioned images under `root`, with the first or all captions of each."""
    if which not in ("first", "all"):
        raise LabError(f"captions must be 'first' or 'all', got '{which}'")
    layout, folder = detect_layout(Path(root))
    image_dir = folder / ("images" if layout == "cvpr2016" else "jpg")
    try:
        entries = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        captions = _caption_files(layout, folder)
    except OSError as e:
        raise unreadable(e, folder) from None
    result = CaptionSet(items=[], class_split=read_class_split(folder) if layout == "original" else None)
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
