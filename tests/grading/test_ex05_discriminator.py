"""Exercise 5: the conditional DCGAN discriminator (small widths keep the checks fast)."""

from __future__ import annotations

import pytest
import torch

from lab.config import ExperimentConfig, Part
from lab.errors import LabError
from lab.parts.interfaces import Discriminator as DiscriminatorInterface

TEXT, PROJ, WIDTH = 16, 8, 8


def _make(ex, image_size: int = 64) -> torch.nn.Module:
    torch.manual_seed(0)
    return ex.Discriminator(text_dim=TEXT, text_proj_dim=PROJ, width=WIDTH, image_size=image_size)


def _inputs(n: int = 4, size: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1, torch.randn(n, TEXT, generator=g)


@pytest.mark.points(2)
@pytest.mark.parametrize("image_size", [64, 128])
def test_output_shapes(ex, image_size):
    discriminator = _make(ex, image_size)
    assert isinstance(discriminator, DiscriminatorInterface)
    logits, features = discriminator(*_inputs(size=image_size))
    assert logits.shape == (4,)
    assert features.shape == (4, WIDTH * 8, 4, 4)


@pytest.mark.points(1)
def test_head_sees_image_and_text_channels(ex):
    head = _make(ex).head
    assert isinstance(head, torch.nn.Conv2d) and head.kernel_size == (4, 4)
    assert head.in_channels == WIDTH * 8 + PROJ and head.out_channels == 1


@pytest.mark.points(2)
def test_text_is_replicated_over_the_4x4_features(ex):
    discriminator = _make(ex)
    seen = []
    discriminator.head.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    _, features = discriminator(*_inputs())
    (head_input,) = seen
    torch.testing.assert_close(head_input[:, : WIDTH * 8], features)
    text = head_input[:, WIDTH * 8 :]
    assert text.shape == (4, PROJ, 4, 4)
    torch.testing.assert_close(text, text[:, :, :1, :1].expand_as(text))
    assert text[:, :, 0, 0].abs().sum() > 0


@pytest.mark.points(2)
def test_text_changes_the_score_not_the_features(ex):
    discriminator = _make(ex)
    image, text = _inputs()
    _, other_text = _inputs(seed=2)
    logits, features = discriminator(image, text)
    other_logits, other_features = discriminator(image, other_text)
    torch.testing.assert_close(features, other_features)
    scale = logits.abs().max()
    assert (logits - other_logits).abs().max() > 0.01 * scale, "the caption does not change the score"
    other_image, _ = _inputs(seed=3)
    assert (discriminator(other_image, text)[0] - logits).abs().max() > 0.01 * scale, (
        "the image does not change the score"
    )


@pytest.mark.points(2)
def test_gradient_reaches_inputs_and_parameters(ex):
    discriminator = _make(ex)
    image, text = (t.requires_grad_() for t in _inputs())
    logits, _ = discriminator(image, text)
    logits.sum().backward()
    assert image.grad.abs().sum() > 0 and text.grad.abs().sum() > 0
    for name, p in discriminator.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient for {name}"


@pytest.mark.points(1)
def test_architecture_size(ex):
    """Counted by hand from the exercise's description (bias-free convolutions, 64 px, width 8)."""
    convs = 3 * 8 * 16 + (8 * 16 * 16 + 2 * 16) + (16 * 32 * 16 + 2 * 32) + (32 * 64 * 16 + 2 * 64)  # 64 -> 4 px
    projection = (TEXT * PROJ + PROJ) + 2 * PROJ
    head = (64 + PROJ) * 16
    assert sum(p.numel() for p in _make(ex).parameters()) == convs + projection + head


@pytest.mark.points(1)
def test_wrong_image_size_is_a_lab_error(ex):
    with pytest.raises(LabError):
        _make(ex, 128)(*_inputs(size=64))


@pytest.mark.points(2)
def test_plugs_into_the_trainer(ex):
    from lab.parts.build import build_discriminator

    config = ExperimentConfig(
        discriminator=Part(f"{ex.__name__}:Discriminator", {"text_proj_dim": PROJ, "width": WIDTH})
    )
    discriminator = build_discriminator(config, text_dim=TEXT)
    assert isinstance(discriminator, ex.Discriminator)
    assert discriminator(*_inputs())[0].shape == (4,)
