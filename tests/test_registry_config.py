import pytest
import torch

from lab.config import ExperimentConfig, load, parse_overrides
from lab.errors import LabError
from lab.parts.interfaces import Generator
from lab.parts.registry import ALL, GENERATORS, Registry
from tests.helpers import ROOT, run_lab


def test_builtin_plugins_are_listed():
    assert {"mpnet", "distilbert", "minilm"} <= set(ALL["encoders"].list())
    assert "dcgan" in ALL["generators"].list() and "dcgan" in ALL["discriminators"].list()
    assert "gan-cls" in ALL["losses"].list()
    assert ALL["encoders"].list("m*") == sorted(n for n in ALL["encoders"].list() if n.startswith("m"))


def test_register_create_and_unknown_name():
    reg = Registry("widget")

    @reg.register("square")
    def square(x: int = 2):
        return x * x

    assert reg.create("square", x=3) == 9
    with pytest.raises(LabError, match="unknown widget 'circle'; available: square"):
        reg.create("circle")
    hint = r"is a file path; name the module and the class instead: exercises\.ex04_generator:\w+ \(run from the folder"
    with pytest.raises(LabError, match=hint):
        reg.create("exercises/ex04_generator.py")  # a file path: the hint names its module
    with pytest.raises(ValueError):
        reg.register("square")(lambda: 0)


def test_module_attribute_spec_builds_a_class():
    g = GENERATORS.create("plugins.dcgan:DCGANGenerator", text_dim=12, width=8, image_size=64)
    assert isinstance(g, Generator) and g(torch.randn(2, 100), torch.randn(2, 12)).shape == (2, 3, 64, 64)
    with pytest.raises(LabError, match="has no generator 'Nope'"):
        GENERATORS.create("plugins.dcgan:Nope")
    with pytest.raises(LabError, match="cannot import"):
        GENERATORS.create("no_such_module:Thing")


def test_config_file_and_overrides(tmp_path):
    (tmp_path / "c.toml").write_text('epochs = 7\nencoder = "minilm"\nlr = 0.001\n')
    (tmp_path / "c.yaml").write_text("epochs: 3\nimage_size: 128\n")
    c = load(tmp_path / "c.toml", ["--epochs=9", "--batch-size=16"])
    assert (c.epochs, c.encoder, c.lr, c.batch_size) == (9, "minilm", 0.001, 16)
    assert load(tmp_path / "c.yaml").image_size == 128
    assert load().epochs == ExperimentConfig().epochs


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--epochs=many"], "expects int"),
        (["--colour=red"], "unknown config key"),
        (["epochs=3"], "expected --key=value"),
        (["--sync_every=0"], "'sync_every' must be at least 1"),
    ],
)
def test_bad_overrides_are_clear(overrides, message):
    with pytest.raises(LabError, match=message):
        load(None, overrides)


def test_parse_overrides_keeps_equals_in_values():
    assert parse_overrides(["--sample_captions=a=b|c"]) == {"sample_captions": "a=b|c"}


def test_cli_lists_plugins_and_reports_errors_in_one_line(tmp_path):
    out = run_lab("plugins")
    assert out.returncode == 0 and "mpnet" in out.stdout and "gan-cls" in out.stdout
    bad = run_lab("train", f"--config={tmp_path}/missing.toml")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"lab train: error: config file not found: {tmp_path}/missing.toml"]
    relative = run_lab("train", "--config=no/such.toml")
    assert relative.stderr.strip().endswith(
        "(relative paths start in the current folder: run from the repository root)"
    )


def test_third_party_plugins_load_through_entry_points(monkeypatch, tmp_path):
    import sys
    from importlib.metadata import EntryPoint

    import lab.parts.registry as registry

    (tmp_path / "third_party_gen.py").write_text(
        "from lab.parts.registry import GENERATORS\n"
        "@GENERATORS.register('third-party')\n"
        "def make(**kw):\n    return 'built'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = EntryPoint(name="demo", value="third_party_gen", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep] if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "_loaded", False)
    assert registry.GENERATORS.create("third-party") == "built"
    assert "third-party" in registry.GENERATORS.list()
    registry.GENERATORS._factories.pop("third-party")
    sys.modules.pop("third_party_gen")


def test_train_with_a_missing_data_folder_fails_in_one_line(tmp_path):
    out = run_lab("train", f"--data_dir={tmp_path}/nope", "--encoder=no-such-encoder")
    # the data folder is checked first: the bad encoder name is never reached
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"lab train: error: data folder not found: {tmp_path}/nope (run `lab data download flowers` or `lab data synthetic {tmp_path}/nope`)"
    ]


def test_naming_another_part_says_which_settings_it_drops(capsys):
    from lab.config import load

    config = load(ROOT / "configs" / "quick.toml", ["--generator=exercises.ex04_generator:Generator"])
    assert config.generator.name == "exercises.ex04_generator:Generator" and config.generator.options == {}
    (note,) = capsys.readouterr().err.strip().splitlines()
    assert "replaces" in note and "generator 'dcgan' and its settings (width=32, skip=True, blur=1)" in note
    assert note.endswith("add --generator.width=32 --generator.skip=True --generator.blur=1 for those your part takes")
    load(ROOT / "configs" / "quick.toml", ["--generator=dcgan", "--loss.l1_weight=0"])  # the same part: nothing dropped
    assert capsys.readouterr().err == ""
