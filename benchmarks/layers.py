"""The dcgan layers that compute a plain layer's numbers a cheaper way, each timed against the plain layer.

- `TiledTextConv` (the joint D's image-text conv, the text half added per kernel tap) against a 3x3 conv
  over cat([image features, text tiled over the map]): batch 32, D width 32 (256 image + 256 text
  channels at 4x4).
- `FromVector` (G's 1x1 -> 4x4 first layer as a matmul) against the transposed conv: batch 32, noise 100 +
  text 256 in, G width 32 (256 channels) out.

Each is one forward + backward at the main job's shapes, and each pair is checked to give the same numbers.

    python benchmarks/layers.py [--batch 32] [--width 32] [--repeats 50]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F
from generation_latency import median_ms

from plugins.dcgan import FromVector, TiledTextConv


def compare(name: str, plain: Callable[[], torch.Tensor], fast: Callable[[], torch.Tensor], repeats: int) -> None:
    torch.testing.assert_close(fast(), plain(), rtol=1e-4, atol=1e-4)
    times = [median_ms(lambda fn=fn: fn().square().sum().backward(), repeats) for fn in (plain, fast)]
    print(f"{name:16s} plain {times[0]:7.2f} ms   {times[1]:7.2f} ms   speed-up x{times[0] / times[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--width", type=int, default=32, help="G's and D's width: their 4x4 stages have width * 8 channels"
    )
    parser.add_argument("--text", type=int, default=256, help="text projection channels")
    parser.add_argument("--noise", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.manual_seed(0)
    channels = args.width * 8
    print(f"batch {args.batch}, forward + backward, {torch.get_num_threads()} threads")

    conv = TiledTextConv(channels, args.text, channels, bias=False)
    features = torch.randn(args.batch, channels, 4, 4, requires_grad=True)
    text = torch.randn(args.batch, args.text, requires_grad=True)
    tiled = lambda: torch.cat([features, text[:, :, None, None].expand(-1, -1, 4, 4)], dim=1)  # noqa: E731
    compare(
        "TiledTextConv", lambda: F.conv2d(tiled(), conv.weight, padding=1), lambda: conv(features, text), args.repeats
    )

    first = FromVector(args.noise + args.text, channels)
    vector = torch.randn(args.batch, args.noise + args.text, 1, 1, requires_grad=True)
    compare("FromVector", lambda: F.conv_transpose2d(vector, first.weight), lambda: first(vector), args.repeats)


if __name__ == "__main__":
    main()
