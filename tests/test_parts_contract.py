"""A contract every registered part keeps (as timm tests every model in `list_models()`): for each generator x
discriminator x loss recipe found in the registries (built-ins and entry-point plugins alike), at a tiny width,
one `train_step` gives finite losses and the right shapes, and a saved run renders the same images through
`Pipeline.from_run` as the live generator does."""

import itertools
import math

import pytest
import torch

from lab.checkpoint import save_checkpoint, save_run_config
from lab.config import ExperimentConfig, apply
from lab.errors import LabError
from lab.parts.build import build_parts
from lab.parts.registry import DISCRIMINATORS, GENERATORS, LOSSES
from lab.sample.pipeline import Pipeline
from lab.train.step import train_step

SIZE, BATCH, WIDTH = 64, 4, 4
COMBINATIONS = list(itertools.product(GENERATORS.list(), DISCRIMINATORS.list(), LOSSES.list()))


def config_for(generator: str, discriminator: str, loss: str) -> ExperimentConfig:
    return apply(
        ExperimentConfig(),
        {
            "encoder": "minilm",
            "image_size": SIZE,
            "generator": generator,
            "discriminator": discriminator,
            "loss": loss,
            "generator.width": WIDTH,
            "discriminator.width": WIDTH,
        },
    )


def test_every_kind_of_part_is_registered():
    assert GENERATORS.list() and DISCRIMINATORS.list() and LOSSES.list()


@pytest.mark.parametrize("generator,discriminator,loss", COMBINATIONS, ids=["-".join(c) for c in COMBINATIONS])
def test_part_contract(generator, discriminator, loss, minilm, tmp_path):
    check_contract(config_for(generator, discriminator, loss), minilm, tmp_path)


THIRD_PARTY = """
import torch
from torch import nn
from lab.interfaces import Generator
from lab.registry import GENERATORS

class LinearGenerator(Generator):
    def __init__(self, text_dim, image_size, width=4, noise_dim=100):
        super().__init__()
        self.noise_dim, self.text_dim, self.image_size, self.extra_losses = noise_dim, text_dim, image_size, {}
        self.net = nn.Sequential(nn.Linear(noise_dim + text_dim, width), nn.ReLU(), nn.Linear(width, 3 * image_size**2))

    def forward(self, noise, text_embedding):
        x = self.net(torch.cat([noise, text_embedding], 1))
        return torch.tanh(x).view(-1, 3, self.image_size, self.image_size)

@GENERATORS.register("third-party-linear")
def linear(text_dim, image_size, width=4):
    return LinearGenerator(text_dim, image_size, width)
"""


def test_a_plugin_installed_through_the_entry_point_keeps_the_contract(minilm, tmp_path, monkeypatch):
    import sys
    from importlib.metadata import EntryPoint

    import lab.parts.registry as registry

    (tmp_path / "third_party_parts.py").write_text(THIRD_PARTY)
    monkeypatch.syspath_prepend(str(tmp_path))
    found = [EntryPoint(name="builtin", value="plugins", group=registry.ENTRY_POINT_GROUP)]
    found.append(EntryPoint(name="demo", value="third_party_parts", group=registry.ENTRY_POINT_GROUP))
    monkeypatch.setattr(registry, "entry_points", lambda group: found if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "_loaded", False)
    try:
        assert "third-party-linear" in GENERATORS.list()
        check_contract(config_for("third-party-linear", "dcgan", "gan-cls"), minilm, tmp_path)
    finally:
        GENERATORS._factories.pop("third-party-linear", None)
        sys.modules.pop("third_party_parts", None)


def check_contract(config: ExperimentConfig, minilm, tmp_path) -> None:
    torch.manual_seed(0)
    try:
        G, D, recipe = build_parts(config, minilm.dim)
    except LabError as e:  # a combination the parts refuse must say so in one line, at build time
        assert "\n" not in str(e)
        pytest.skip(f"refused: {e}")
    assert (G.noise_dim, G.image_size) == (G.noise_dim, SIZE)
    emb = minilm.encode(["a red flower with five round petals"] * BATCH).clone()  # out of inference mode
    noise = torch.randn(BATCH, G.noise_dim)
    assert G(noise, emb).shape == (BATCH, 3, SIZE, SIZE)
    logits, features = D(torch.rand(BATCH, 3, SIZE, SIZE) * 2 - 1, emb)
    assert logits.shape[0] == BATCH and logits.numel() == BATCH and features.shape[0] == BATCH

    batch = {"image": torch.rand(BATCH, 3, SIZE, SIZE) * 2 - 1, "wrong_image": torch.rand(BATCH, 3, SIZE, SIZE) * 2 - 1}
    batch["embedding"] = emb
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=1e-4) for m in (G, D))
    before = [p.detach().clone() for p in G.parameters()]
    terms = train_step(G, D, recipe, opt_g, opt_d, batch, noise)
    assert {"d_loss", "g_loss"} <= set(terms)
    assert all(math.isfinite(float(v)) for v in terms.values()), terms
    assert any(not torch.equal(a, b) for a, b in zip(before, G.parameters())), "the G step changed no weight"

    run = tmp_path / "run"
    run.mkdir()
    save_run_config(run, config, minilm.dim)
    save_checkpoint(run, {"generator": G.state_dict()}, G)
    live = Pipeline(G.eval(), minilm)(["a red flower with five round petals"], 3, seed=1)
    loaded = Pipeline.from_run(run, encoders={(config.encoder, config.encoder_path): minilm})
    assert torch.equal(loaded(["a red flower with five round petals"], 3, seed=1), live)
