"""Pictures of a run: captioned sample grids and loss curves."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from .files import atomic_write
from .pixels import to_pil


def caption_grid(images: torch.Tensor, captions: list[str], per_caption: int, label_width: int = 260) -> Image.Image:
    """One row per caption: the caption text on the left, its `per_caption` images to the right."""
    tiles = to_pil(images)
    size = tiles[0].width
    grid = Image.new("RGB", (label_width + per_caption * size, len(captions) * size), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=max(11, size // 10))
    for row, caption in enumerate(captions):
        lines, line = [], ""
        for word in caption.split():  # wrap to the label column
            if draw.textlength(f"{line} {word}", font=font) > label_width - 10 and line:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        draw.multiline_text((5, row * size + 5), "\n".join([*lines, line]), fill="black", font=font)
        for col in range(per_caption):
            grid.paste(tiles[row * per_caption + col], (label_width + col * size, row * size))
    return grid


def save_loss_plot(metrics: list[dict], path: Path) -> None:
    """D and G loss per epoch (plus their terms, dashed), so trends are seen at a glance."""
    import matplotlib

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
