"""Exercise 1: read the Flowers captions from disk.

A text-to-image data set is a list of (image, captions) pairs. The Flowers
captions of Reed et al. (2016) ship in two layouts, and the lab supports both:

- "cvpr2016": `images/<name>.jpg` next to `captions/<name>.txt`;
- original:   `jpg/image_XXXXX.jpg` next to `text_c10/class_XXXXX/image_XXXXX.txt`,
  where the class folder also tells the flower's species (its label).

Each caption file holds one caption per line (10 per flower). Real data is
messy: some images have no caption file, some files are empty, some lines are
blank or absurdly long. A loader must never use such an item silently: it
skips it and *counts why*, so the user can be told.

Given (already imported from `lab.data.captions`): `clean_caption(text)` collapses
whitespace and cuts a caption longer than `MAX_CAPTION_CHARS` at a word
boundary; `detect_layout(root)` returns `(layout, folder)`;
`CaptionedImage(image_path, captions, label)` and `CaptionSet(items, skipped)`.

Check your work: `lab grade --only ex01`. Reference: `solutions/ex01_captions.py`.
"""

from __future__ import annotations

from pathlib import Path

from lab.data.captions import (  # noqa: F401  (given: use them)
    MAX_CAPTION_CHARS,
    CaptionedImage,
    CaptionSet,
    clean_caption,
    detect_layout,
)
from lab.errors import LabError  # noqa: F401  (given: use them)


def read_caption_file(path: Path) -> tuple[list[str], int]:
    """Return (non-empty cleaned captions, number of lines that were cut because too long)."""
    # TODO: read the file as UTF-8 (errors="replace"), one caption per line.
    #  - drop lines that are blank once whitespace is collapsed;
    #  - clean each remaining line with clean_caption;
    #  - count the lines longer than MAX_CAPTION_CHARS (after collapsing whitespace).
    raise NotImplementedError("ex01: read_caption_file is not implemented yet")


def load_captions(root: str | Path, which: str = "first") -> CaptionSet:
    """All captioned images under `root` (sorted by file name), with the first or all captions of each."""
    # TODO:
    #  1. `which` must be "first" or "all", otherwise raise lab.errors.LabError.
    #  2. layout, folder = detect_layout(Path(root)); images live in folder/"images" (cvpr2016)
    #     or folder/"jpg" (original); keep files ending in .jpg/.jpeg/.png, sorted.
    #  3. Map each image stem to its caption file; in the original layout the label is the
    #     index of its class folder among the sorted class folders (cvpr2016 has no labels: -1).
    #  4. For each image: no caption file -> skipped["image without caption file"] += 1;
    #     no caption left -> skipped["empty caption file"] += 1;
    #     add the cut-line count to skipped["over-long caption cut"];
    #     otherwise keep CaptionedImage(image, captions[:1] or all captions, label).
    #  5. No item at all -> raise LabError. Drop zero counts from `skipped`.
    raise NotImplementedError("ex01: load_captions is not implemented yet")
