"""Caption -> image, in one place (diffusers-style): a generator, its text encoder, and the noise.

Sample grids during training, `lab generate`, `lab eval`, `lab compare` and
the benchmarks all go through `Pipeline`, so they agree on what a seed means:
noise comes from a generator seeded with `seed` alone, so the same seed gives
every run the same noise, which is what makes side-by-side comparisons fair.

    pipe = Pipeline.from_run("runs/quick")
    images = pipe(["a red flower with a yellow center"], n=4, seed=0)  # [4, 3, H, W] in [-1, 1]

A pipeline renders in one precision: `from_run` takes the run's own (`precision`
in its config: a bf16 run renders under bf16 autocast) unless told otherwise
(`precision="fp32"`, `lab eval --precision fp32`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from lab.checkpoint import Run, check_compatible, load_run
from lab.data.captions import MAX_CAPTION_CHARS
from lab.device import autocast, resolve_precision, to_device_async
from lab.errors import LabError
from lab.parts.build import load_encoder
from lab.parts.interfaces import Generator, TextEncoder
from lab.pixels import to_uint8

MAX_SEED = 2**63 - 1


def fixed_noise(n: int, noise_dim: int, seed: int) -> torch.Tensor:
    """`n` noise vectors drawn from `seed` alone (CPU generator, so every device gets the same numbers)."""
    if not 0 <= seed <= MAX_SEED:
        raise LabError(f"seed must be a whole number from 0 to 2**63-1, got {seed}")
    return torch.randn(n, noise_dim, generator=torch.Generator().manual_seed(seed))


def validate_caption(caption: str) -> str:
    caption = " ".join(str(caption).split())
    if not caption:
        raise LabError("caption is empty")
    if len(caption) > MAX_CAPTION_CHARS:
        raise LabError(f"caption is {len(caption)} characters; the limit is {MAX_CAPTION_CHARS}")
    return caption


class Pipeline:
    """A generator and the text encoder it was trained with; call it with captions, a count and a seed."""

    def __init__(
        self,
        generator: Generator,
        encoder: TextEncoder,
        batch_size: int = 256,
        run: Run | None = None,
        precision: str = "fp32",
    ):
        if getattr(generator, "text_dim", encoder.dim) != encoder.dim:
            raise LabError(
                f"the generator expects {generator.text_dim}-d text embeddings but the encoder gives {encoder.dim}-d"
            )
        if batch_size < 1:
            raise LabError(f"batch size must be at least 1, got {batch_size}")
        self.generator, self.encoder, self.batch_size, self.run = generator, encoder, batch_size, run
        self.precision = resolve_precision(precision, self.device)

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        device: str = "cpu",
        encoders: dict | None = None,
        batch_size: int = 256,
        precision: str = "run",
        trust_code: bool = False,
    ) -> Pipeline:
        """The run's generator (EMA weights when the run kept them) with its encoder, rendering in the run's
        precision (`precision="run"`) or the one given ("fp32", "bf16", ...).

        `encoders` caches encoders across calls by (name, path), so pipelines
        of several runs with one encoder share a single instance. A run whose
        config names a part by `module:attribute` loads only with `trust_code`
        (that imports the code: a run folder is otherwise data)."""
        run = load_run(run_dir, device, trust_code)
        precision = run.config.precision if precision == "run" else precision
        key = (run.config.encoder, run.config.encoder_path)
        encoders = {} if encoders is None else encoders
        if key not in encoders:
            encoders[key] = load_encoder(run.config, device)
        encoder = encoders[key]
        check_compatible(run.dir, run.text_dim, encoder.dim, run.config.image_size, run.generator.image_size)
        return cls(run.generator, encoder, batch_size, run, precision)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @torch.no_grad()
    def render(self, noise: torch.Tensor, embeddings: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """G in eval mode on (noise, embeddings) in batches; [-1, 1] images on the CPU."""
        was_training = self.generator.training
        self.generator.eval()
        chunks = []
        steps = range(0, len(noise), self.batch_size)
        for i in tqdm(steps, desc="generating", disable=not progress or len(steps) < 2, unit="batch"):
            j = i + self.batch_size
            with autocast(self.precision, self.device):
                fake = self.generator(
                    to_device_async(noise[i:j], self.device), to_device_async(embeddings[i:j], self.device)
                )
            chunks.append(fake.float().cpu())
        self.generator.train(was_training)
        return torch.cat(chunks) if chunks else torch.empty(0, 3, self.generator.image_size, self.generator.image_size)

    def __call__(self, captions: list[str], n: int = 1, seed: int = 0, progress: bool = False) -> torch.Tensor:
        """[len(captions) * n, 3, H, W] in [-1, 1]: caption i owns rows i*n .. i*n+n-1, and all captions share the same n noises."""
        captions = [validate_caption(c) for c in captions]
        embeddings = self.encoder.encode(captions).repeat_interleave(n, dim=0)
        noise = fixed_noise(n, self.generator.noise_dim, seed).repeat(len(captions), 1)
        return self.render(noise, embeddings, progress)

    def one_each(self, embeddings: torch.Tensor, seed: int = 0, progress: bool = False) -> torch.Tensor:
        """uint8 images, one per embedding, each with its own noise vector (evaluation's protocol)."""
        return to_uint8(self.render(fixed_noise(len(embeddings), self.generator.noise_dim, seed), embeddings, progress))

    def interpolate(self, start: str, end: str, steps: int, seed: int = 0) -> torch.Tensor:
        """[steps, 3, H, W] in [-1, 1]: one noise vector, the text embedding walked from `start`'s to `end`'s.

        The walk is spherical when the encoder's vectors are unit length (MPNet and MiniLM normalise theirs): the
        straight line between two unit vectors runs inside the sphere, where no caption lies, so its middle
        images would be drawn from embeddings shorter than any G was trained on."""
        if steps < 2:
            raise LabError(f"an interpolation needs at least 2 steps, got {steps}")
        a, b = self.encoder.encode([validate_caption(start), validate_caption(end)]).float().cpu()
        t = torch.linspace(0, 1, steps).unsqueeze(1)
        unit = bool(torch.allclose(torch.stack([a.norm(), b.norm()]), torch.ones(2), atol=1e-3))
        path = slerp(a, b, t) if unit else torch.lerp(a, b, t)
        return self.render(fixed_noise(1, self.generator.noise_dim, seed).repeat(steps, 1), path)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points [len(t), D] on the great circle from `a` to `b` (unit vectors) at fractions `t` [T, 1] of the way."""
    omega = torch.arccos(torch.dot(a, b).clamp(-1, 1))
    if omega < 1e-4:  # (nearly) the same direction: the circle is a line
        return torch.lerp(a, b, t)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
