"""configs/flowers.toml (the lab's recipe for real Flowers) and configs/flowers-course.toml (the course's GAN-CLS)
start and train on a miniature of the real archive's layout, at their own 128 px, at a tiny width."""

import math

import pytest

from lab.checkpoint import load_run, read_metrics
from lab.config import load, read_file
from lab.experiments.sweep import read_sweep
from lab.parts.build import build_parts
from lab.train.trainer import train
from tests.helpers import ROOT, flowers_archive

RECIPE_TERMS = {"d_match", "g_match", "g_ms"}  # the matching term and mode seeking: the main job's lessons


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The layout `lab data download flowers` unpacks, with the real archive's trainval/test class files."""
    return flowers_archive(
        tmp_path_factory.mktemp("archive"), {"trainvalclasses.txt": [1, 2, 3, 4], "testclasses.txt": [5, 6]}, size=160
    )


@pytest.mark.parametrize("name", ["flowers.toml", "flowers-course.toml"])
def test_flowers_configs_train_on_the_real_layout(name, archive, tmp_path, capsys):
    tiny = {
        "data_dir": archive.parent,
        "encoder": "minilm",
        "generator.width": 8,
        "discriminator.width": 8,
        "batch_size": 8,
        "epochs": 1,
        "max_images": 2,
        "cache_dir": tmp_path / "cache",
        "out_dir": tmp_path / "run",
        "threads": 1,
    }
    config = load(ROOT / "configs" / name, [f"--{k}={v}" for k, v in tiny.items()])
    assert config.image_size == 128 and config.captions == "all" and config.data_dir == str(archive.parent)
    run = train(config, progress=False)
    (epoch,) = read_metrics(run)
    assert all(math.isfinite(v) for v in epoch.values())
    assert load_run(run).generator.image_size == 128 and (run / "samples" / "epoch_001.png").is_file()
    err = capsys.readouterr().err
    assert "random crops (from 1.1875x) and flips" in err  # photos: augment_photos auto = crop + mirror
    if name == "flowers.toml":
        assert RECIPE_TERMS <= set(epoch) and (config.precision, config.log) == ("auto", "tensorboard")
        assert any((run / "tb").iterdir()), "the recipe logs to TensorBoard"
    else:
        assert not RECIPE_TERMS & set(epoch) and not (run / "tb").exists()
        assert (config.generator.options, config.loss.name) == ({"width": 8}, "gan-cls")


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_and_sweep_variant_builds_its_parts(path):
    """A config or sweep variant in configs/ that names a setting a part does not take fails here, not hours
    into someone's benchmark."""
    configs = list(read_sweep(path)[3].values()) if "variants" in read_file(path) else [load(path, [])]
    for config in configs:
        generator, discriminator, _ = build_parts(config, text_dim=384)
        assert generator.image_size == discriminator.image_size == config.image_size
