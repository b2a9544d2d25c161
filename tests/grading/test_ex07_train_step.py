"""Exercise 7: one training step, checked with the lab's own tiny DCGAN parts and loss."""

from __future__ import annotations

import copy
import random

import pytest
import torch
from torchvision.transforms.functional import pil_to_tensor

from lab.data.synthetic import draw_flower, random_attributes
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
    return {
        "image": real,
        "wrong_image": real.roll(1, 0),
        "embedding": torch.randn(N, TEXT, generator=torch.Generator().manual_seed(0)),
    }


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
def test_discriminator_judges_each_group_alone(ex, fixed_batch):
    generator, discriminator, recipe, opt_g, opt_d = _parts()
    expected_fake = copy.deepcopy(generator)(_noise(), fixed_batch["embedding"])
    calls = []
    discriminator.register_forward_pre_hook(
        lambda module, args: calls.append([a.detach().clone() if not a.requires_grad else a for a in args])
    )
    ex.train_step(generator, discriminator, recipe, opt_g, opt_d, fixed_batch, _noise())
    assert [len(images) for images, _ in calls] == [N] * 5, (
        "D runs on real, wrong and fake alone (D step), then on fake and real (G step)"
    )
    (real, real_text), (wrong, _), (fake, _), (g_fake, g_text), (g_real, _) = calls
    torch.testing.assert_close(real, fixed_batch["image"])
    torch.testing.assert_close(wrong, fixed_batch["wrong_image"], msg="the wrong images are not fed to D")
    torch.testing.assert_close(fake, expected_fake.detach())
    torch.testing.assert_close(real_text, fixed_batch["embedding"])
    assert not fake.requires_grad, "detach the fakes in the D step: D's loss must not reach G"
    assert g_fake.requires_grad, "the G step must backpropagate through the fakes into G"
    torch.testing.assert_close(g_text, fixed_batch["embedding"])
    torch.testing.assert_close(g_real, fixed_batch["image"])


@pytest.mark.points(2)
def test_d_sees_the_fakes_as_it_would_alone(ex, fixed_batch):
    """Batch statistics: D's logits for the fakes in the D step equal D's logits for the fakes passed alone."""
    generator, discriminator, recipe, opt_g, opt_d = _parts()
    fake = copy.deepcopy(generator)(_noise(), fixed_batch["embedding"]).detach()
    alone = copy.deepcopy(discriminator)(fake, fixed_batch["embedding"])[0]  # train mode, before the update
    seen = {}

    def spy(real_logits, wrong_logits, fake_logits):
        seen["fake"] = fake_logits.detach()
        return GanClsLoss.discriminator_loss(recipe, real_logits, wrong_logits, fake_logits)

    recipe.discriminator_loss = spy
    ex.train_step(generator, discriminator, recipe, opt_g, opt_d, fixed_batch, _noise())
    torch.testing.assert_close(seen["fake"], alone.detach())


@pytest.mark.points(2)
def test_generator_step_uses_updated_d_and_detached_real_features(ex, fixed_batch):
    generator, discriminator, recipe, opt_g, opt_d = _parts()
    before = copy.deepcopy(discriminator.state_dict())
    seen = {}

    def spy(fake_logits, fake_features, real_features, fake_images, real_images):
        seen["updated"] = any(not torch.equal(p, before[k]) for k, p in discriminator.state_dict().items())
        seen["real_features"] = real_features
        seen["expected"] = copy.deepcopy(discriminator)(fixed_batch["image"], fixed_batch["embedding"])[1].detach()
        return GanClsLoss.generator_loss(recipe, fake_logits, fake_features, real_features, fake_images, real_images)

    recipe.generator_loss = spy
    ex.train_step(generator, discriminator, recipe, opt_g, opt_d, fixed_batch, _noise())
    assert seen["updated"], "update D (opt_d.step()) before the G step"
    assert not seen["real_features"].requires_grad, "real features must be detached"
    torch.testing.assert_close(
        seen["real_features"],
        seen["expected"],
        msg="real features come from the updated D, run on the real batch alone",
    )


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
