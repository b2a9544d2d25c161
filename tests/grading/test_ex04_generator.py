"""Exercise 4: the conditional DCGAN generator (small widths keep the checks fast)."""

from __future__ import annotations

import pytest
import torch

from lab.config import ExperimentConfig, Part
from lab.errors import LabError
from lab.parts.interfaces import Generator as GeneratorInterface

TEXT, NOISE, PROJ, WIDTH = 16, 10, 8, 8


def _make(ex, image_size: int = 64) -> torch.nn.Module:
    torch.manual_seed(0)
    return ex.Generator(text_dim=TEXT, noise_dim=NOISE, text_proj_dim=PROJ, width=WIDTH, image_size=image_size)


def _inputs(n: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, NOISE, generator=g), torch.randn(n, TEXT, generator=g)


@pytest.mark.points(2)
@pytest.mark.parametrize("image_size", [64, 128])
def test_output_shape_and_attributes(ex, image_size):
    generator = _make(ex, image_size)
    assert isinstance(generator, GeneratorInterface), "subclass lab.interfaces.Generator"
    got = (generator.text_dim, generator.noise_dim, generator.image_size)
    assert got == (TEXT, NOISE, image_size), (
        f"(text_dim, noise_dim, image_size): expected {(TEXT, NOISE, image_size)}, got {got}"
    )
    shape = tuple(generator(*_inputs()).shape)
    assert shape == (4, 3, image_size, image_size), (
        f"output shape: expected {(4, 3, image_size, image_size)}, got {shape}"
    )


LAYERS = {  # the exercise's generator at 64 px: layer type -> how many
    torch.nn.Linear: 1,
    torch.nn.BatchNorm1d: 1,
    torch.nn.ConvTranspose2d: 5,
    torch.nn.BatchNorm2d: 4,
}
WHY = {
    torch.nn.BatchNorm2d: "a BatchNorm2d after every ConvTranspose2d but the last (without it the output fades to a constant)",
    torch.nn.BatchNorm1d: "a BatchNorm1d in the text projection, after the Linear",
    torch.nn.ConvTranspose2d: "one ConvTranspose2d per doubling, 1 -> 4 -> 8 -> 16 -> 32 -> 64 px",
}


@pytest.mark.points(1)
def test_architecture_size(ex):
    """Counted by hand from the exercise's description (bias-free convolutions, 64 px, width 8). Checked first:
    a wrong count names the missing layer before the symptoms it causes."""
    projection = (TEXT * PROJ + PROJ) + 2 * PROJ  # Linear + BatchNorm1d
    first = (NOISE + PROJ) * 64 * 16 + 2 * 64  # 1x1 -> 4x4, 64 = width*8 channels
    stages = (64 * 32 * 16 + 2 * 32) + (32 * 16 * 16 + 2 * 16) + (16 * 8 * 16 + 2 * 8)  # 4 -> 8 -> 16 -> 32
    to_rgb = 8 * 3 * 16  # 32 -> 64, no BatchNorm
    expected = projection + first + stages + to_rgb
    generator = _make(ex)
    got = sum(p.numel() for p in generator.parameters())
    found = {kind: sum(isinstance(m, kind) for m in generator.modules()) for kind in LAYERS}
    wrong = [
        f"expected {n} {kind.__name__}, found {found[kind]}: {WHY.get(kind, '')}".rstrip(": ")
        for kind, n in LAYERS.items()
        if found[kind] != n
    ]
    biased = [
        name for name, m in generator.named_modules() if isinstance(m, torch.nn.ConvTranspose2d) and m.bias is not None
    ]
    if biased:
        wrong.append(f"bias=False in every ConvTranspose2d (BatchNorm has its own shift); {biased[0]} has a bias")
    assert got == expected, f"expected {expected} parameters, got {got}" + (f"; {wrong[0]}" if wrong else "")


@pytest.mark.points(1)
def test_output_is_tanh_range(ex):
    out = _make(ex)(*_inputs())
    assert out.min() >= -1.0 and out.max() <= 1.0, (
        f"expected pixels in [-1, 1], got [{out.min():.3f}, {out.max():.3f}]: end with Tanh"
    )
    assert out.std() > 1e-3, (
        f"the output is constant (std {out.std():.1e}, expected > 1e-3): "
        "without BatchNorm2d the activations shrink layer by layer (see architecture_size)"
    )


@pytest.mark.points(2)
def test_output_depends_on_text_and_noise(ex):
    generator = _make(ex)
    noise, text = _inputs()
    other_noise, other_text = _inputs(seed=2)
    base = generator(noise, text)
    assert (generator(noise, other_text) - base).abs().max() > 0.01 * base.abs().max(), (
        "the caption does not change the image"
    )
    assert (generator(other_noise, text) - base).abs().max() > 0.01 * base.abs().max(), (
        "the noise does not change the image"
    )


@pytest.mark.points(2)
def test_gradient_reaches_every_parameter(ex):
    generator = _make(ex)
    generator(*_inputs()).square().sum().backward()
    for name, p in generator.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"no gradient for {name}"
        assert p.grad.abs().sum() > 0, f"zero gradient for {name}"


@pytest.mark.points(1)
def test_dcgan_initialisation(ex):
    weights = torch.cat([m.weight.flatten() for m in _make(ex).modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert abs(weights.mean()) < 0.002 and 0.018 < weights.std() < 0.022, (
        f"ConvTranspose2d weights: expected mean 0 and std 0.02 (DCGAN init), got mean {weights.mean():.4f}, std {weights.std():.4f}"
    )


@pytest.mark.points(1)
def test_unsupported_size_is_a_lab_error(ex):
    with pytest.raises(LabError):
        _make(ex, image_size=96)


@pytest.mark.points(2)
def test_plugs_into_the_trainer(ex):
    from lab.parts.build import build_generator

    config = ExperimentConfig(
        generator=Part(f"{ex.__name__}:Generator", {"noise_dim": NOISE, "text_proj_dim": PROJ, "width": WIDTH})
    )
    generator = build_generator(config, text_dim=TEXT)
    assert isinstance(generator, ex.Generator)
    assert generator(*_inputs()).shape == (4, 3, config.image_size, config.image_size)
