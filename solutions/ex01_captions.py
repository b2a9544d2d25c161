"""Solution to exercise 1: read the Flowers captions from disk, in either layout.

Every image that cannot be used is skipped and counted by reason, never used
silently. (The lab's loader, `lab/data/captions.py`, does the same and more:
Latin-1 files, broken links, caption files without an image, the class split.)
"""

from __future__ import annotations

from pathlib import Path

from lab.data.captions import MAX_CAPTION_CHARS, CaptionedImage, CaptionSet, clean_caption, detect_layout
from lab.errors import LabError


def read_caption_file(path: Path) -> tuple[list[str], int]:
    """Return (non-empty cleaned captions, number of lines that were cut because too long)."""
    lines = [" ".join(line.split()) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [line for line in lines if line]  # blank once whitespace is collapsed: dropped
    return [clean_caption(line) for line in lines], sum(len(line) > MAX_CAPTION_CHARS for line in lines)


def load_captions(root: str | Path, which: str = "first") -> CaptionSet:
    """All captioned images under `root` (sorted by file name), with the first or all captions of each."""
    if which not in ("first", "all"):
        raise LabError(f"captions must be 'first' or 'all', got '{which}'")
    layout, folder = detect_layout(Path(root))
    if layout == "cvpr2016":  # images/<name>.jpg + captions/<name>.txt, no classes
        image_dir = folder / "images"
        caption_files = {p.stem: (p, -1) for p in (folder / "captions").glob("*.txt")}
    else:  # jpg/image_XXXXX.jpg + text_c10/class_XXXXX/image_XXXXX.txt: the class folder is the label
        image_dir = folder / "jpg"
        classes = sorted(p for p in (folder / "text_c10").iterdir() if p.is_dir())
        caption_files = {p.stem: (p, label) for label, d in enumerate(classes) for p in d.glob("*.txt")}
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))

    result = CaptionSet(items=[])
    for image in images:
        if image.stem not in caption_files:
            result.skipped["image without caption file"] += 1
            continue
        path, label = caption_files[image.stem]
        captions, cut = read_caption_file(path)
        result.skipped["over-long caption cut"] += cut
        if not captions:
            result.skipped["empty caption file"] += 1
            continue
        result.items.append(CaptionedImage(image, captions[:1] if which == "first" else captions, label))
    if not result.items:
        raise LabError(f"no captioned images in {folder} ({len(images)} images, {len(caption_files)} caption files)")
    result.skipped = +result.skipped  # drop zero counts
    return result
