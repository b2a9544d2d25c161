"""Exercise 7: one training step, checked with the lab's own tiny DCGAN parts and loss."""
from __future__ import annotations

import copy
import random

import pytest
import torch
from torchvision.transforms.functional import pil_to_tensor

from lab.synthetic import draw_flower, random_attributes
from plugins.dcgan import DCGANDiscriminator, DCGANGenerator
from plugins.gan_cls import GanClsLoss

N, TEXT, NOISE, SIZE = 4, 16, 10, 64
TERMS = {"d_loss", "g_loss", "d_real", "d_wrong", "d_fake", "g_adv", "g_feature", "g_l1"}


def _flowers(n: int, seed: int) -> torch.Tensor:
    rng = random.Random(seed)
    images = [draw_flower(random_attributes(rng), SIZE, rng) for _ in range(n)]
    return torch.stack([pil_to_tensor(im) for im in images]).float() / 127.5 - 1


@pytest.fixture(scope="module")
def fixed_batch() -> dict:
    real = _flowers(N, seed=0)
    return {"image": real, "wrong_image": real.roll(1, 0), "embedding": torch.randn(N, TEXT, generator=torch.Generator().manual_seed(0))}


def _parts() -> tuple:
    torch.manual_seed(0)
    generator = DCGANGenerator(text_dim=TEXT, noise_dim=NOISE, text_proj_dim=8, width=8, image_size=SIZE)
    discriminator = DCGANDiscriminator(text_dim=TEXT, text_proj_dim=8, width=8, image_size=SIZE)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    return generator, discriminator, GanClsLoss(), opt_g, opt_d


def _noise() -> torch.Tensor:
    return torch.randn(N, NOISE, generator=torch.Generator().manual_seed(1))


@pytest.mark.points(2)
def test_returns_float_terms(ex, fixed_batch):
    terms = ex.train_step(*_parts(), fixed_batch, _noise())
    assert set(terms) == TERMS
    assert all(isinstance(v, float) for v in terms.values())
    assert terms["d_loss"] == pytest.approx(terms["d_real"] + terms["d_wrong"] + terms["d_fake"], rel=1e-5)
    assert terms["g_loss"] == pytest.approx(terms["g_adv"] + 100 * terms["g_feature"] + 50 * terms["g_l1"], rel=1e-5)


@pytest.mark.points(3)
def test_discriminator_runs_twice_on_the_right_inputs(ex, fixed_batch):
    generator, discriminator, recipe, opt_g, opt_d = _parts()
    expected_fake = copy.deepcopy(generator)(_noise(), fixed_batch["embedding"])
    calls = []
    discriminator.register_forward_pre_hook(lambda module, args: calls.append([a.detach().clone() if not a.requires_grad else a for a in args]))
    ex.train_step(generator, discriminator, recipe, opt_g, opt_d, fixed_batch, _noise())
    assert [len(images) for images, _ in calls] == [3 * N, N], "D must run once on [real, wrong, fake], then once on fake"
    (d_images, d_text), (g_images, g_text) = calls
    torch.testing.assert_close(d_images[:N], fixed_batch["image"])
    torch.testing.assert_close(d_images[N : 2 * N], fixed_batch["wrong_image"], msg="the wrong images are not fed to D")
    torch.testing.assert_close(d_images[2 * N :], expected_fake.detach())
    torch.testing.assert_close(d_text, fixed_batch["embedding"].repeat(3, 1))
    assert not d_images.requires_grad, "detach the fakes in the D step: D's loss must not reach G"
    assert g_images.requires_grad, "the G step must backpropagate through the fakes into G"
    torch.testing.assert_close(g_text, fixed_batch["embedding"])


@pytest.mark.points(2)
def test_generator_step_uses_updated_d_and_detached_real_features(ex, fixed_batch):
    generator, discriminator, recipe, opt_g, opt_d = _parts()
    before = copy.deepcopy(discriminator.state_dict())
    outputs, seen = [], {}
    discriminator.register_forward_hook(lambda module, args, out: outputs.append(out))

    def spy(fake_logits, fake_features, real_features, fake_images, real_images):
        seen["updated"] = any(not torch.equal(p, before[k]) for k, p in discriminator.state_dict().items())
        seen["real_features"] = real_features
        return GanClsLoss.generator_loss(recipe, fake_logits, fake_features, real_features, fake_images, real_images)

    recipe.generator_loss = spy
    ex.train_step(generator, discriminator, recipe, opt_g, opt_d, fixed_batch, _noise())
    assert seen["updated"], "update D (opt_d.step()) before the G step"
    assert not seen["real_features"].requires_grad, "real features must be detached"
    torch.testing.assert_close(seen["real_features"], outputs[0][1][:N].detach(), msg="reuse the real features of the D step")


@pytest.mark.points(1)
def test_both_networks_learn(ex, fixed_batch):
    generator, discriminator, recipe, opt_g, opt_d = _parts()
    g_before = [p.detach().clone() for p in generator.parameters()]
    d_before = [p.detach().clone() for p in discriminator.parameters()]
    ex.train_step(generator, discriminator, recipe, opt_g, opt_d, fixed_batch, _noise())
    assert any(not torch.equal(a, b) for a, b in zip(g_before, generator.parameters())), "G was not updated"
    assert any(not torch.equal(a, b) for a, b in zip(d_before, discriminator.parameters())), "D was not updated"


@pytest.mark.points(2)
def test_a_few_steps_lower_the_d_loss(ex, fixed_batch):
    parts = _parts()
    noise = _noise()
    losses = [ex.train_step(*parts, fixed_batch, noise)["d_loss"] for _ in range(8)]
    assert losses[-1] < 0.8 * losses[0], f"D loss did not go down on a fixed batch: {[round(x, 3) for x in losses]}"


@pytest.mark.points(1)
def test_batch_is_not_modified(ex, fixed_batch):
    copies = {k: v.clone() for k, v in fixed_batch.items()}
    ex.train_step(*_parts(), fixed_batch, _noise())
    assert all(torch.equal(copies[k], fixed_batch[k]) for k in copies)
