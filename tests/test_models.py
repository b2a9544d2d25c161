import pytest
import torch
import torch.nn.functional as F

from lab.config import ExperimentConfig, apply
from lab.errors import LabError
from lab.parts.build import build_parts
from plugins.gan_cls import GanClsLoss


@pytest.mark.parametrize("size", [64, 128])
def test_generator_and_discriminator_follow_one_image_size(size):
    config = apply(ExperimentConfig(), {"image_size": size, "generator.width": 8, "discriminator.width": 8})
    g, d, _ = build_parts(config, text_dim=768)
    emb = torch.randn(3, 768)
    images = g(torch.randn(3, 100), emb)
    assert images.shape == (3, 3, size, size) and images.abs().max() <= 1
    logits, features = d(images, emb)
    assert logits.shape == (3,) and features.shape == (3, 64, 4, 4)
    assert d.head.in_channels == 8 * 8 + 256  # width*8 image channels + the default projected text


def test_discriminator_rejects_the_wrong_image_size():
    _, d, _ = build_parts(
        apply(ExperimentConfig(), {"image_size": 128, "generator.width": 8, "discriminator.width": 8}), text_dim=16
    )
    with pytest.raises(LabError, match="expects 128x128"):
        d(torch.randn(2, 3, 64, 64), torch.randn(2, 16))


def test_unsupported_image_size_is_a_clear_error():
    with pytest.raises(LabError, match="image_size must be one of"):
        build_parts(ExperimentConfig(image_size=96), text_dim=16)


def test_gan_cls_losses_match_hand_computation():
    torch.manual_seed(0)
    real, wrong, fake = torch.randn(4), torch.randn(4), torch.randn(4)
    d = GanClsLoss().discriminator_loss(real, wrong, fake)
    expected = -(
        torch.log(torch.sigmoid(real)).mean()
        + torch.log(1 - torch.sigmoid(wrong)).mean()
        + torch.log(1 - torch.sigmoid(fake)).mean()
    )
    assert torch.allclose(d.total, expected, atol=1e-5)
    assert set(d.terms) == {"d_real", "d_wrong", "d_fake"}

    ff, rf = torch.randn(4, 8, 4, 4), torch.randn(4, 8, 4, 4)
    fi, ri = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    g = GanClsLoss(feature_weight=100, l1_weight=50).generator_loss(fake, ff, rf, fi, ri)
    by_hand = (
        -torch.log(torch.sigmoid(fake)).mean()
        + 100 * ((ff.mean(0) - rf.mean(0)) ** 2).mean()
        + 50 * (fi - ri).abs().mean()
    )
    assert torch.allclose(g.total, by_hand, atol=1e-4)


def test_reed_discriminator_loss_smooths_the_real_label_and_halves_wrong_and_fake():
    torch.manual_seed(0)
    real, wrong, fake = torch.randn(4, requires_grad=True), torch.randn(4), torch.randn(4)
    d = GanClsLoss(real_label=0.9, wrong_weight=0.5, fake_weight=0.5).discriminator_loss(real, wrong, fake)
    p = torch.sigmoid(real)
    smoothed = -(0.9 * torch.log(p) + 0.1 * torch.log(1 - p)).mean()
    expected = (
        smoothed - 0.5 * torch.log(1 - torch.sigmoid(wrong)).mean() - 0.5 * torch.log(1 - torch.sigmoid(fake)).mean()
    )
    assert torch.allclose(d.total, expected, atol=1e-5)
    assert d.terms["d_real"] == pytest.approx(smoothed.item(), rel=1e-5)
    d.total.backward()  # a real logit's gradient is zero at sigmoid = 0.9, not at 1: D stops short of certainty
    assert torch.allclose(real.grad, (p - 0.9).detach() / 4, atol=1e-6)
    with pytest.raises(LabError, match="real_label"):
        GanClsLoss(real_label=0.3)


def test_text_changes_the_generated_image_and_gradients_reach_the_projection():
    g, d, recipe = build_parts(apply(ExperimentConfig(), {"generator.width": 8, "discriminator.width": 8}), text_dim=16)
    noise = torch.randn(4, 100)
    a, b = g(noise, torch.randn(4, 16)), g(noise, torch.randn(4, 16))
    assert not torch.allclose(a, b)
    logits, _ = d(a, torch.randn(4, 16))
    F.binary_cross_entropy_with_logits(logits, torch.ones(4)).backward()
    assert g.project[0].weight.grad.abs().sum() > 0 and d.project[0].weight.grad.abs().sum() > 0


def test_pooled_l1_compares_block_averages_only():
    fake, real = torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 16, 16)
    real[:, :, ::2] = 2.0  # stripes: every 8x8 block averages to 1
    logits, features = torch.zeros(2), torch.zeros(2, 4, 4, 4)
    plain = GanClsLoss(l1_weight=1.0).generator_loss(logits, features, features, fake, real)
    pooled = GanClsLoss(l1_weight=1.0, l1_pool=8).generator_loss(logits, features, features, fake + 1.0, real)
    assert plain.terms["g_l1"] == pytest.approx(1.0) and pooled.terms["g_l1"] == pytest.approx(0.0)


def test_rotated_l1_scores_each_fake_against_the_closest_turn_of_its_photo():
    real = torch.rand(3, 3, 16, 16)
    turned = torch.rot90(real, 1, (2, 3))  # a quarter turn: the same photo in another pose
    logits, features = torch.zeros(3), torch.zeros(3, 4, 4, 4)
    plain = GanClsLoss(l1_weight=1.0).generator_loss(logits, features, features, turned, real).terms["g_l1"]
    aligned = (
        GanClsLoss(l1_weight=1.0, l1_rotations=4).generator_loss(logits, features, features, turned, real).terms["g_l1"]
    )
    assert plain > 0.2 and aligned == pytest.approx(0.0, abs=1e-5)
    fake = (real + 0.1 * torch.randn_like(real)).requires_grad_()
    loss = GanClsLoss(l1_weight=1.0, l1_rotations=4).generator_loss(logits, features, features, fake, real)
    assert loss.terms["g_l1"] == pytest.approx(
        F.l1_loss(fake, real).item(), rel=1e-5
    )  # the photo's own pose is the closest
    loss.total.backward()
    assert fake.grad.abs().sum() > 0
    with pytest.raises(LabError, match="l1_rotations >= 1"):
        GanClsLoss(l1_rotations=0)
