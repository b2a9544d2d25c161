"""The training step and the variants a lab compares: correct batch statistics, hinge + MA-GP, DiffAugment, EMA,
conditioning augmentation, the DF-GAN generator, and the config tables that carry their settings."""

import copy

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import lab.train.trainer as trainer_module
from lab.checkpoint import load_checkpoint, read_metrics
from lab.config import ExperimentConfig, apply, load
from lab.errors import LabError
from lab.parts.build import build_parts
from lab.train.augment import AugmentedDiscriminator, diff_augment
from lab.train.step import train_step
from lab.train.trainer import Trainer, train
from plugins.dcgan import Blur, FromVector, TiledTextConv
from plugins.gan_cls import matching_loss
from plugins.hinge_magp import HingeMAGP

N, TEXT = 4, 16


def _parts(**settings):
    torch.manual_seed(0)
    config = apply(ExperimentConfig(), {"generator.width": 8, "discriminator.width": 8, **settings})
    generator, discriminator, recipe = build_parts(config, text_dim=TEXT)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    return generator, discriminator, recipe, opt_g, opt_d


def _batch():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(N, 3, 64, 64, generator=g) * 2 - 1
    return {"image": real, "wrong_image": real.roll(1, 0), "embedding": torch.randn(N, TEXT, generator=g)}, torch.randn(
        N, 100, generator=g
    )


def test_d_step_judges_the_fakes_exactly_as_it_would_judge_them_alone():
    """With BatchNorm in D, batch composition is part of the algorithm: the fakes must get their own statistics."""
    generator, discriminator, recipe, opt_g, opt_d = _parts()
    batch, noise = _batch()
    fake = copy.deepcopy(generator)(noise, batch["embedding"]).detach()
    alone = copy.deepcopy(discriminator)(fake, batch["embedding"])[0].detach()  # train mode, before the update
    seen = {}
    real_loss = recipe.discriminator_loss
    recipe.discriminator_loss = lambda r, w, f: seen.setdefault("fake", f.detach()) is None or real_loss(r, w, f)
    train_step(generator, discriminator, recipe, opt_g, opt_d, batch, noise)
    torch.testing.assert_close(seen["fake"], alone)


def test_feature_matching_target_comes_from_the_updated_d():
    generator, discriminator, recipe, opt_g, opt_d = _parts()
    batch, noise = _batch()
    seen = {}
    real_loss = recipe.generator_loss

    def spy(fake_logits, fake_features, real_features, fake, real):
        seen["target"] = real_features
        seen["expected"] = copy.deepcopy(discriminator)(real, batch["embedding"])[1].detach()
        return real_loss(fake_logits, fake_features, real_features, fake, real)

    recipe.generator_loss = spy
    train_step(generator, discriminator, recipe, opt_g, opt_d, batch, noise)
    torch.testing.assert_close(seen["target"], seen["expected"])
    assert not seen["target"].requires_grad


def test_magp_is_the_gradient_norm_of_real_pairs_to_the_sixth():
    _, discriminator, _, _, _ = _parts(**{"discriminator.norm": "none"})
    batch, _ = _batch()
    real, emb = batch["image"], batch["embedding"]
    x, e = real.clone().requires_grad_(), emb.clone().requires_grad_()
    gx, ge = torch.autograd.grad(discriminator(x, e)[0].sum(), (x, e))
    by_hand = 2.0 * torch.cat([gx.flatten(1), ge.flatten(1)], 1).norm(dim=1).pow(6).mean()
    fake = torch.zeros_like(real)
    out = HingeMAGP().discriminator_step(discriminator, real, batch["wrong_image"], fake, emb)
    hinge = HingeMAGP().discriminator_loss(
        discriminator(real, emb)[0], discriminator(batch["wrong_image"], emb)[0], discriminator(fake, emb)[0]
    )
    assert out.terms["d_gp"] == pytest.approx(by_hand.item(), rel=1e-4)
    assert out.total.item() == pytest.approx(hinge.total.item() + by_hand.item(), rel=1e-4)
    out.total.backward()  # the penalty is differentiable w.r.t. D's weights (create_graph)
    assert all(p.grad is not None for p in discriminator.parameters())


def test_discriminator_without_batch_norm_has_none():
    _, discriminator, _, _, _ = _parts(**{"discriminator.norm": "none"})
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in discriminator.modules())
    with pytest.raises(LabError, match="norm must be 'batch' or 'none'"):
        _parts(**{"discriminator.norm": "layer"})


def test_projection_adds_the_text_image_inner_product_to_the_logit():
    _, discriminator, _, _, _ = _parts(**{"discriminator.projection": True})
    batch, _ = _batch()
    discriminator.eval()
    logits, features = discriminator(batch["image"], batch["embedding"])
    match = (batch["embedding"] @ discriminator.text_match.weight.T * features.sum((2, 3))).sum(1)
    with torch.no_grad():
        discriminator.text_match.weight.zero_()
    plain, _ = discriminator(batch["image"], batch["embedding"])
    assert match.abs().min() > 0
    torch.testing.assert_close(logits, plain + match)


def test_match_scores_are_cosines_of_every_image_with_every_caption_and_need_the_projection():
    _, discriminator, _, _, _ = _parts(**{"discriminator.projection": True})
    batch, _ = _batch()
    features = torch.randn(N, 64, 4, 4)
    scores = discriminator.match_scores(features, batch["embedding"])
    text = discriminator.text_match(batch["embedding"])
    i, j = 1, 3
    torch.testing.assert_close(scores[i, j], torch.cosine_similarity(features[i].sum((1, 2)), text[j], dim=0))
    assert scores.shape == (N, N) and scores.abs().max() <= 1 + 1e-6
    _, plain, _, _, _ = _parts()
    with pytest.raises(LabError, match="projection = true"):
        plain.match_scores(features, batch["embedding"])


def test_matching_term_teaches_d_to_pick_each_image_caption_out_of_the_batch():
    """Only the matching term trains D here: after a few steps every real image scores its own caption highest."""
    _, discriminator, _, _, opt_d = _parts(**{"discriminator.projection": True})
    batch, _ = _batch()

    def picks() -> torch.Tensor:
        with torch.no_grad():
            features = discriminator(batch["image"], batch["embedding"])[1]
            return discriminator.match_scores(features, batch["embedding"]).argmax(1)

    assert not torch.equal(picks(), torch.arange(N))
    for _ in range(30):
        features = discriminator(batch["image"], batch["embedding"])[1]
        loss = matching_loss(discriminator, features, batch["embedding"], temperature=0.1)
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
    assert torch.equal(picks(), torch.arange(N))


def test_matching_adds_its_weighted_term_to_both_players_and_nothing_when_off():
    generator, discriminator, _, _, _ = _parts(**{"discriminator.projection": True})
    batch, noise = _batch()
    fake = generator(noise, batch["embedding"])
    off = build_parts(apply(ExperimentConfig(), {}), TEXT)[2]
    on = build_parts(apply(ExperimentConfig(), {"loss.matching": 0.5}), TEXT)[2]
    args = (discriminator, batch["image"], batch["wrong_image"], fake.detach(), batch["embedding"])
    d_off, d_on = off.discriminator_step(*args), on.discriminator_step(*args)
    real_features = discriminator(batch["image"], batch["embedding"])[1]
    torch.testing.assert_close(
        d_on.total - d_off.total, 0.5 * matching_loss(discriminator, real_features, batch["embedding"], 0.1)
    )
    assert "d_match" in d_on.terms and "d_match" not in d_off.terms
    g_on = on.generator_step(discriminator, fake, batch["image"], batch["embedding"])
    g_off = off.generator_step(discriminator, fake, batch["image"], batch["embedding"])
    fake_features = discriminator(fake, batch["embedding"])[1]
    torch.testing.assert_close(
        g_on.total - g_off.total, 0.5 * matching_loss(discriminator, fake_features, batch["embedding"], 0.1)
    )
    g_on.terms["g_match"].item()  # logged under its own name
    assert torch.autograd.grad(g_on.total - g_off.total, fake)[0].abs().sum() > 0  # G is taught by it
    with pytest.raises(LabError, match="temperature > 0"):
        build_parts(apply(ExperimentConfig(), {"loss.matching": 0.5, "loss.temperature": 0.0}), TEXT)


@pytest.mark.parametrize("size, bias", [((4, 4), False), ((5, 3), True)])
def test_tiled_text_conv_equals_the_conv_over_the_tiled_concatenation(size, bias):
    torch.manual_seed(0)
    conv = TiledTextConv(image_channels=6, text_channels=5, out_channels=7, bias=bias)
    features, text = torch.randn(2, 6, *size), torch.randn(2, 5)
    tiled = torch.cat([features, text[:, :, None, None].expand(-1, -1, *size)], dim=1)
    torch.testing.assert_close(conv(features, text), F.conv2d(tiled, conv.weight, conv.bias, padding=1))


@pytest.mark.parametrize(
    "memory_format", [torch.contiguous_format, torch.channels_last]
)  # the trainer keeps G channels-last
def test_from_vector_is_the_transposed_conv_from_1x1_with_its_gradients(memory_format):
    torch.manual_seed(0)
    layer = FromVector(6, 5).to(memory_format=memory_format)
    vector = torch.randn(3, 6, 1, 1, requires_grad=True)
    ours, plain = layer(vector), F.conv_transpose2d(vector, layer.weight)
    torch.testing.assert_close(ours, plain)
    grad_out = torch.randn_like(plain)
    torch.testing.assert_close(
        torch.autograd.grad(ours, (vector, layer.weight), grad_out),
        torch.autograd.grad(plain, (vector, layer.weight), grad_out),
    )
    assert list(layer.state_dict()) == ["weight"] and layer.weight.shape == (
        6,
        5,
        4,
        4,
    )  # checkpoints of the plain layer load


def test_blur_removes_the_checkerboard_and_keeps_flat_colour():
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    checkerboard = ((rows + cols) % 2 * 2 - 1).float().expand(1, 3, 8, 8)
    flat = torch.full((1, 3, 8, 8), 0.7)
    assert checkerboard.abs().min() == 1
    inside = (..., slice(1, -1), slice(1, -1))  # the corners see their own pixel through the replicated border
    torch.testing.assert_close(Blur(3)(checkerboard)[inside], torch.zeros_like(checkerboard)[inside])
    torch.testing.assert_close(Blur(3)(flat), flat)


def test_blur_1_is_the_plain_generator_blurred_before_tanh():
    plain, _, _, _, _ = _parts()
    smooth, _, _, _, _ = _parts(**{"generator.blur": 1})
    smooth.load_state_dict(plain.state_dict())  # the filter is fixed, so both have the same weights
    plain.eval(), smooth.eval()
    batch, noise = _batch()
    with torch.no_grad():
        before_tanh = plain.net[:-1](torch.cat([noise, plain.project(batch["embedding"])], 1)[:, :, None, None])
        torch.testing.assert_close(smooth(noise, batch["embedding"]), torch.tanh(Blur(3)(before_tanh)))
    inner, _, _, _, _ = _parts(**{"generator.blur": 4})
    assert (
        sum(isinstance(m, Blur) for m in inner.modules()) == 4
    )  # after the 8, 16 and 32 px upsamplings, and on the 64 px RGB output
    with pytest.raises(LabError, match="blur must be between 0 and 4"):
        _parts(**{"generator.blur": 5})


def test_discriminator_blur_judges_every_image_through_the_low_pass():
    _, sharp, _, _, _ = _parts()
    _, blurred, _, _, _ = _parts(**{"discriminator.blur": True})
    blurred.load_state_dict(sharp.state_dict())  # the filter has no weights
    sharp.eval(), blurred.eval()
    batch, _ = _batch()
    with torch.no_grad():
        torch.testing.assert_close(
            blurred(batch["image"], batch["embedding"])[0], sharp(Blur(3)(batch["image"]), batch["embedding"])[0]
        )
        assert not torch.allclose(
            blurred(batch["image"], batch["embedding"])[0], sharp(batch["image"], batch["embedding"])[0]
        )


def test_skip_generator_adds_every_stage_rgb_upsampled_to_the_last_conv():
    plain, _, _, _, _ = _parts()
    skip, _, _, _, _ = _parts(**{"generator.skip": True})
    skip.load_state_dict(plain.state_dict(), strict=False)  # same stages; only the 1x1 RGB convs are new
    plain.eval(), skip.eval()
    batch, noise = _batch()
    with torch.no_grad():
        assert not torch.allclose(skip(noise, batch["embedding"]), plain(noise, batch["embedding"]))
        for rgb in skip.to_rgb:
            rgb.weight.zero_(), rgb.bias.zero_()
        torch.testing.assert_close(skip(noise, batch["embedding"]), plain(noise, batch["embedding"]))
        # the 4x4 stage alone paints the whole 64x64 image: a flat colour survives every bilinear upsampling
        skip.net[-2].weight.zero_()
        skip.to_rgb[0].bias.copy_(torch.tensor([0.5, -0.2, 0.1]))
        torch.testing.assert_close(
            skip(noise, batch["embedding"]),
            torch.tanh(torch.tensor([0.5, -0.2, 0.1])).view(1, 3, 1, 1).expand(N, 3, 64, 64),
        )


def test_diff_augment_is_seeded_shape_preserving_and_really_changes_images():
    x = torch.rand(8, 3, 16, 16) + 0.5  # no zeros, so cutout and padding show
    a = diff_augment(x, "translation,cutout,color", torch.Generator().manual_seed(1))
    b = diff_augment(x, "translation,cutout,color", torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    cut = diff_augment(x, "cutout", torch.Generator().manual_seed(2))
    zeroed = (cut == 0).all(1).flatten(1).sum(1)
    assert ((zeroed > 0) & (zeroed <= 64)).all(), "cutout zeroes at most a half-side square per image"
    moved = diff_augment(x, "translation", torch.Generator().manual_seed(3))
    assert (
        not torch.equal(moved, x)
        and torch.isclose(moved[moved != 0].sort().values[-5:], x.flatten().sort().values[-5:]).any()
    )
    with pytest.raises(LabError, match="unknown augment policy 'flip'"):
        load(None, ["--augment.policy=flip"])


def test_augmentation_reaches_every_image_d_sees_in_both_steps():
    generator, discriminator, recipe, opt_g, opt_d = _parts()
    judge = AugmentedDiscriminator(discriminator, "translation,cutout", seed=0)
    seen = []
    discriminator.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    batch, noise = _batch()
    train_step(generator, judge, recipe, opt_g, opt_d, batch, noise)
    assert len(seen) == 5
    for images, raw in zip(seen, [batch["image"], batch["wrong_image"], None, None, batch["image"]]):
        assert (images == 0).flatten(1).any(1).all(), "every image D sees carries a cutout"
        if raw is not None:
            assert not torch.equal(images, raw)


def test_config_tables_from_a_file_and_the_command_line(tmp_path):
    (tmp_path / "c.toml").write_text(
        '[generator]\nname = "dfgan"\nwidth = 16\n[loss]\nname = "hinge-magp"\ngp_weight = 1.5\n[augment]\npolicy = "translation"\n'
    )
    c = load(tmp_path / "c.toml", ["--generator.cond_aug=true", "--discriminator.norm=none", "--lr_d=4e-4"])
    assert c.generator.name == "dfgan" and c.generator.options == {"width": 16, "cond_aug": True}
    assert c.loss.options == {"gp_weight": 1.5} and c.augment.policy == "translation"
    assert c.discriminator.to_dict() == {"name": "dcgan", "norm": "none"} and c.lr_discriminator == 4e-4
    assert load(None, ["--generator=dfgan"]).generator.options == {}  # another part starts from its own defaults
    with pytest.raises(LabError, match="generator 'dcgan' has no setting 'depth'"):
        build_parts(load(None, ["--generator.depth=3"]), text_dim=8)
    with pytest.raises(LabError, match="config key 'epochs' has no settings"):
        load(None, ["--epochs.x=3"])


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("batch_size", "1", "at least 2"),
        ("epochs", "0", "at least 1"),
        ("lr", "0", "positive"),
        ("lr", "nan", "positive"),
        ("lr", "-1e-4", "positive"),
        ("image_size", "96", "power of two"),
        ("ema", "1.5", r"in \[0, 1\)"),
        ("seed", str(2**70), "2\\*\\*63"),
    ],
)
def test_config_ranges_are_checked_at_load_time(key, value, message):
    with pytest.raises(LabError, match=f"config key '{key}' must be .*{message}"):
        load(None, [f"--{key}={value}"])


def test_a_setting_the_parts_reject_fails_before_any_image_is_decoded(tiny_config, tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("data was read before the models were built")

    monkeypatch.setattr("lab.train.trainer.build_dataset", no_data)
    with pytest.raises(LabError, match="width must be at least 1"):
        Trainer(tiny_config(**{"generator.width": 0}), tmp_path / "r", resume=False, progress=False)


def test_ema_batch_norm_statistics_are_measured_on_the_averaged_weights(tiny_config, tmp_path):
    """The average's running means belong to the average, not to the live G; measuring them draws nothing
    from the training RNGs (conditioning augmentation samples from torch's global one in train mode)."""
    trainer = Trainer(
        tiny_config(ema=0.9, epochs=1, **{"generator.cond_aug": True}), tmp_path / "run", resume=False, progress=False
    )
    trainer.run()
    rngs = torch.get_rng_state(), trainer.random.data.get_state()
    trainer.ema.recalibrate(trainer.dataset.embeddings, trainer.config.batch_size, trainer.dist.device)
    assert torch.equal(rngs[0], torch.get_rng_state()) and torch.equal(rngs[1], trainer.random.data.get_state())
    average = trainer.ema.model
    first_conv, first_norm = average.net[0], average.net[1]
    g = torch.Generator().manual_seed(1)
    picks = torch.randint(len(trainer.dataset.embeddings), (2048,), generator=g)
    with torch.no_grad():
        average.project.train()  # text codes sampled, as during calibration and training
        z = torch.cat([torch.randn(2048, 100, generator=g), average.project(trainer.dataset.embeddings[picks])], 1)
        average.project.eval()
        activations = first_conv(z[:, :, None, None])
    mean, std = activations.mean((0, 2, 3)), activations.std((0, 2, 3))
    assert ((first_norm.running_mean - mean).abs() < 0.2 * std).all()
    assert ((first_norm.running_var.sqrt() / std - 1).abs() < 0.2).all()
    assert not average.training


def test_variant_run_trains_keeps_ema_and_resumes_exactly(tiny_config, tmp_path):
    variant = {
        "generator": "dfgan",
        "generator.width": 4,
        "generator.cond_aug": True,
        "discriminator.norm": "none",
        "loss": "hinge-magp",
        "augment.policy": "translation,cutout,color",
        "ema": 0.9,
        "beta1": 0.0,
        "beta2": 0.9,
        "lr": 1e-4,
        "lr_d": 4e-4,
    }
    straight = train(tiny_config(out_dir=str(tmp_path / "straight"), **variant), progress=False)
    metrics = read_metrics(straight)
    assert {"d_gp", "g_kl", "g_adv", "d_real", "d_wrong", "d_fake"} <= set(metrics[0])
    state = load_checkpoint(straight)
    assert any(not torch.equal(state["ema"][k], state["generator"][k]) for k in state["generator"])
    saved = load_file(str(straight / "generator.safetensors"))
    assert all(torch.equal(saved[k], state["ema"][k]) for k in saved), "downstream uses the EMA weights"

    halves = tmp_path / "halves"
    train(tiny_config(out_dir=str(halves), **{**variant, "epochs": 1}), progress=False)
    train(tiny_config(out_dir=str(halves), **{**variant, "epochs": 2}), resume=halves, progress=False)
    resumed = load_checkpoint(halves)
    for part in ("generator", "discriminator", "ema"):
        assert all(torch.equal(state[part][k], resumed[part][k]) for k in state[part]), f"{part} differs after resume"


def test_lr_given_on_resume_applies(tiny_config, tmp_path):
    run = train(tiny_config(epochs=1), progress=False)
    trainer = Trainer(tiny_config(epochs=2, lr=1e-5), run, resume=True, progress=False)
    assert [g["lr"] for g in trainer.opt_g.param_groups] == [1e-5] and [
        g["lr"] for g in trainer.opt_d.param_groups
    ] == [1e-5]


def test_metrics_come_from_the_checkpoint_so_a_kill_after_saving_never_duplicates_a_line(
    tiny_config, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    calls = [0]
    real_write = trainer_module.write_metrics

    def killed_once(run_dir, history):
        calls[0] += 1
        if calls[0] == 1:  # epoch 1 is in the checkpoint, the process dies before metrics.jsonl is written
            raise KeyboardInterrupt
        real_write(run_dir, history)

    monkeypatch.setattr(trainer_module, "write_metrics", killed_once)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(epochs=2), progress=False)
    train(tiny_config(epochs=2), resume=run, progress=False)
    assert [m["epoch"] for m in read_metrics(run)] == [1, 2]


def test_nan_before_any_checkpoint_says_none_was_saved(tiny_config, monkeypatch):
    monkeypatch.setattr("lab.train.trainer.train_step", lambda *args: {"d_loss": float("nan"), "g_loss": 1.0})
    with pytest.raises(LabError, match=r"at epoch 1 step 1; training stopped, no checkpoint had been saved yet"):
        train(tiny_config(), progress=False)


def test_a_run_directory_in_use_is_refused(tiny_config, tmp_path):
    from lab.runlock import run_lock

    with run_lock(tmp_path / "run"):  # as if another `lab train` were writing there
        with pytest.raises(LabError, match="is in use by process"):
            train(tiny_config(), progress=False)


def test_a_cuda_device_without_a_gpu_is_one_clear_error(monkeypatch):
    from lab.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(LabError, match="no CUDA GPU is visible"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"


def test_pipeline_renders_thousands_of_captions_in_batches():
    from lab.sample.pipeline import Pipeline

    class Encoder:
        dim = TEXT

        def encode(self, texts):
            return torch.randn(len(texts), TEXT)

    generator, _, _, _, _ = _parts()
    sizes = []
    generator.register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    images = Pipeline(generator, Encoder(), batch_size=64)(["a flower"] * 300, n=2, seed=0)
    assert images.shape == (600, 3, 64, 64) and max(sizes) == 64 and sum(sizes) == 600
    assert generator.training, "the pipeline restores the mode it found"


def test_a_checkpoint_missing_state_is_one_clear_error(tiny_config, tmp_path):
    run = train(tiny_config(epochs=1), progress=False)
    state = load_checkpoint(run)
    del state["history"], state["rng"]
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(LabError, match="lacks rng, history"):
        train(tiny_config(epochs=2), resume=run, progress=False)
