"""Pictures of a run: captioned sample grids and loss curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import torch
from PIL import Image, ImageDraw, ImageFont

from lab.files import atomic_write
from lab.pixels import to_pil


def label_font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, which matplotlib ships. Pillow's built-in default font has a space barely wider than the gap
    between two letters (2 px at 11 px), so captions drawn with it read "thisflower has seven roundblue petals"."""
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)


def wrap_words(text: str, font: ImageFont.FreeTypeFont, width: float, max_lines: int) -> list[str]:
    """`text` in lines of whole words at most `width` pixels wide (a word wider than that gets a line of its own).
    Text past `max_lines` lines is cut at a word and the last line ends in an ellipsis, so it never runs into the
    next row of a grid."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1].split()
    while len(last) > 1 and font.getlength(" ".join(last) + " …") > width:
        last.pop()
    return [*lines[: max_lines - 1], " ".join(last) + " …"]


def caption_grid(images: torch.Tensor, captions: list[str], per_caption: int, label_width: int = 260) -> Image.Image:
    """One row per caption: the caption text on the left, its `per_caption` images to the right."""
    tiles = to_pil(images)
    size = tiles[0].width
    grid = Image.new("RGB", (label_width + per_caption * size, len(captions) * size), "white")
    draw = ImageDraw.Draw(grid)
    font = label_font(max(11, size // 10))
    ascent, descent = font.getmetrics()
    pad, line_height = 5, ascent + descent
    for row, caption in enumerate(captions):
        lines = wrap_words(caption, font, label_width - 2 * pad, max(1, (size - pad) // line_height))
        for i, line in enumerate(lines):
            draw.text((pad, row * size + pad + i * line_height), line, fill="black", font=font)
        for col in range(per_caption):
            grid.paste(tiles[row * per_caption + col], (label_width + col * size, row * size))
    return grid


def save_loss_plot(metrics: list[dict], path: Path) -> None:
    """D and G loss per epoch (plus their terms, dashed), so trends are seen at a glance."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [m["epoch"] for m in metrics]
    fig, (ax_d, ax_g) = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, prefix in ((ax_d, "d_"), (ax_g, "g_")):
        for key in [k for k in metrics[-1] if k.startswith(prefix)]:
            ax.plot(epochs, [m[key] for m in metrics], "-o" if key.endswith("loss") else "--", label=key, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title("discriminator" if prefix == "d_" else "generator")
        ax.set_yscale("log" if prefix == "g_" else "linear")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90))
    plt.close(fig)


def nearest_grid(generated: torch.Tensor, neighbours: torch.Tensor, distances: torch.Tensor) -> Image.Image:
    """One row per generated image (uint8 [N, 3, S, S]): it, a gap, then its k nearest training images
    (uint8 [N, k, 3, S, S]) with their feature distances, nearest first. A row of near-copies means G memorises."""
    n, k = neighbours.shape[:2]
    scale = max(1, 96 // generated.shape[-1])  # small images are shown enlarged, pixel for pixel
    size, gap, label = generated.shape[-1] * scale, 12, 16
    grid = Image.new("RGB", (size * (k + 1) + gap, label + n * (size + label)), "white")
    draw = ImageDraw.Draw(grid)
    font = label_font(10)
    draw.text((2, 2), "generated", fill="black", font=font)
    draw.text((size + gap + 2, 2), f"{k} nearest training images, feature distance", fill="black", font=font)

    def tile(image: torch.Tensor) -> Image.Image:
        return Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).resize((size, size), Image.NEAREST)

    for row in range(n):
        y = label + row * (size + label)
        grid.paste(tile(generated[row]), (0, y))
        for col in range(k):
            x = size + gap + col * size
            grid.paste(tile(neighbours[row, col]), (x, y))
            draw.text((x + 2, y + size + 1), f"{float(distances[row, col]):.1f}", fill="black", font=font)
    return grid
