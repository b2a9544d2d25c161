"""The joint discriminator's image-text conv: computed without tiling the text, against the plain conv.

Times one forward + backward of `TiledTextConv` (the text half of the input added per kernel tap)
and of the same weights as a plain 3x3 conv over cat([image features, text tiled over the map]),
at the main job's shapes (batch 32, D width 32: 256 image + 256 text channels at 4x4), and checks
that both give the same numbers.

    python benchmarks/joint_conv.py [--batch 32] [--width 32] [--repeats 50]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from generation_latency import median_ms

from plugins.dcgan import TiledTextConv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--width", type=int, default=32, help="D's width: the 4x4 stage has width * 8 channels")
    parser.add_argument("--text", type=int, default=256, help="text projection channels")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.manual_seed(0)
    channels = args.width * 8
    conv = TiledTextConv(channels, args.text, channels, bias=False)
    features = torch.randn(args.batch, channels, 4, 4, requires_grad=True)
    text = torch.randn(args.batch, args.text, requires_grad=True)

    def tiled() -> torch.Tensor:
        return conv(features, text)

    def plain() -> torch.Tensor:
        stacked = torch.cat([features, text[:, :, None, None].expand(-1, -1, 4, 4)], dim=1)
        return F.conv2d(stacked, conv.weight, padding=1)

    torch.testing.assert_close(tiled(), plain(), rtol=1e-4, atol=1e-4)
    times = {name: median_ms(lambda fn=fn: fn().square().sum().backward(), args.repeats) for name, fn in (("plain", plain), ("tiled", tiled))}
    print(f"batch {args.batch}, {channels} image + {args.text} text channels at 4x4, forward + backward, {torch.get_num_threads()} threads")
    print(f"conv over the tiled concatenation  {times['plain']:7.2f} ms")
    print(f"TiledTextConv                      {times['tiled']:7.2f} ms   speed-up x{times['plain'] / times['tiled']:.2f}")


if __name__ == "__main__":
    main()
