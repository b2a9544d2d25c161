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
    assert isinstance(generator, GeneratorInterface)
    assert (generator.text_dim, generator.noise_dim, generator.image_size) == (TEXT, NOISE, image_size)
    assert generator(*_inputs()).shape == (4, 3, image_size, image_size)


@pytest.mark.points(1)
def test_output_is_tanh_range(ex):
    out = _make(ex)(*_inputs())
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert out.std() > 1e-3, "the output is constant"


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
def test_architecture_size(ex):
    """Counted by hand from the exercise's description (bias-free convolutions, 64 px, width 8)."""
    projection = (TEXT * PROJ + PROJ) + 2 * PROJ  # Linear + BatchNorm1d
    first = (NOISE + PROJ) * 64 * 16 + 2 * 64  # 1x1 -> 4x4, 64 = width*8 channels
    stages = (64 * 32 * 16 + 2 * 32) + (32 * 16 * 16 + 2 * 16) + (16 * 8 * 16 + 2 * 8)  # 4 -> 8 -> 16 -> 32
    to_rgb = 8 * 3 * 16  # 32 -> 64, no BatchNorm
    assert sum(p.numel() for p in _make(ex).parameters()) == projection + first + stages + to_rgb


@pytest.mark.points(1)
def test_dcgan_initialisation(ex):
    weights = torch.cat([m.weight.flatten() for m in _make(ex).modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert abs(weights.mean()) < 0.002 and 0.018 < weights.std() < 0.022


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
