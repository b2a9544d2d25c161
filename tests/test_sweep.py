"""`lab sweep`: variants trained and scored alike, a leaderboard, nothing redone or lost; `lab generate --out-dir`."""

import importlib
import json

import pytest
from PIL import Image

from lab.checkpoint import save_run_config
from lab.config import apply
from lab.errors import LabError
from lab.experiments.app import build_demo, expand_sweeps
from lab.experiments.sweep import read_sweep, sweep
from tests.helpers import ROOT, run_lab


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory, synthetic_root):
    folder = tmp_path_factory.mktemp("sweep")
    path = folder / "sweep.toml"
    path.write_text(f"""
out_dir = "{folder / "out"}"
[eval]
n = 6
batch_size = 8
[base]
data_dir = "{synthetic_root}"
cache_dir = "{folder / "cache"}"
encoder = "minilm"
split = "all"
batch_size = 8
epochs = 1
threads = 1
generator = {{name = "dcgan", width = 8}}
discriminator = {{name = "dcgan", width = 8}}
[variants.plain]
loss = "gan-cls"
[variants.no-l1]
loss = {{name = "gan-cls", l1_weight = 0.0}}
discriminator = {{joint = true}}
""")
    return path


def test_sweep_trains_scores_and_ranks_every_variant_then_reuses_them(sweep_file, capsys):
    board = sweep(sweep_file, progress=False)
    out = board.parent
    rows = json.loads((out / "leaderboard.json").read_text())["rows"]
    assert sorted(r["variant"] for r in rows) == ["no-l1", "plain"]
    for row in rows:
        assert (
            row["epochs"] == 1 and row["fid"] > 0 and 0 <= row["all_four"] <= row["mean"] <= 1 and row["diversity"] >= 0
        )
        assert all(0 <= row[k] <= 1 for k in ("precision", "recall", "coverage")) and row["density"] >= 0, row
        assert Image.open(out / row["variant"] / "sweep_samples.png").height == 4 * 64
    assert json.loads((out / "no-l1" / "config.json").read_text())["config"]["discriminator"] == {
        "name": "dcgan",
        "width": 8,
        "joint": True,
    }
    table = board.read_text()
    assert table.startswith("| variant | epochs |") and "![leaderboard](leaderboard.png)" in table
    assert "| diversity | precision | recall | density | coverage |" in table.splitlines()[0]
    assert Image.open(out / "leaderboard.png").width > 400

    stamps = {r["variant"]: (out / r["variant"] / "checkpoint.pt").stat().st_mtime_ns for r in rows}
    sweep(sweep_file, progress=False)  # finished and evaluated: nothing is trained again
    assert stamps == {r["variant"]: (out / r["variant"] / "checkpoint.pt").stat().st_mtime_ns for r in rows}
    runs, sweeps = expand_sweeps([out])
    assert sweeps == [out] and sorted(p.name for p in runs) == ["no-l1", "plain"]
    demo = build_demo([out])  # `lab compare SWEEP_DIR`: its runs side by side, plus the leaderboard
    labels = [getattr(block, "label", None) for block in demo.blocks.values()]
    assert f"Leaderboard: {out.name}" in labels and sum(label == "Images per run" for label in labels) == 1


def test_a_changed_variant_is_refused_without_force(sweep_file, tmp_path):
    changed = tmp_path / "changed.toml"
    changed.write_text(
        sweep_file.read_text().replace('loss = "gan-cls"', 'loss = {name = "gan-cls", feature_weight = 10.0}')
    )
    sweep(sweep_file, only=["plain"], progress=False)
    with pytest.raises(LabError, match="variant 'plain' changed since"):
        sweep(changed, only=["plain"], progress=False)


def test_a_run_saved_without_or_with_another_sync_every_is_reused_but_a_new_lr_is_refused(sweep_file, tmp_path):
    """`sync_every` changes nothing a run learns, and a key that came after a run was trained (`lr_decay`) has the
    run's behaviour as its default: those runs are not "changed". Another learning rate or schedule is."""
    sweep(sweep_file, only=["plain"], progress=False)
    saved_path = read_sweep(sweep_file)[0] / "plain" / "config.json"
    original, checkpoint = saved_path.read_text(), saved_path.with_name("checkpoint.pt")
    stamp = checkpoint.stat().st_mtime_ns
    for key, saved_value in (
        ("sync_every", None),
        ("sync_every", 1),
        ("lr_decay", None),
    ):  # None: trained before the key existed
        saved = json.loads(original)
        if saved_value is None:
            del saved["config"][key]
        else:
            saved["config"][key] = saved_value
        saved_path.write_text(json.dumps(saved))
        sweep(sweep_file, only=["plain"], progress=False)
        assert checkpoint.stat().st_mtime_ns == stamp, f"retrained with saved {key}={saved_value}"
    saved = json.loads(original)
    saved["config"]["lr_decay"] = True
    saved_path.write_text(json.dumps(saved))
    with pytest.raises(LabError, match="variant 'plain' changed since"):
        sweep(sweep_file, only=["plain"], progress=False)
    new_lr = tmp_path / "new_lr.toml"
    new_lr.write_text(sweep_file.read_text().replace("[variants.plain]\n", "[variants.plain]\nlr = 0.001\n"))
    with pytest.raises(LabError, match="variant 'plain' changed since"):
        sweep(new_lr, only=["plain"], progress=False)
    saved_path.write_text(original)


def test_the_quality_benchmark_reuses_its_main_job_refuses_a_changed_one_and_retrains_it_with_force(
    sweep_file, tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    benchmark = importlib.import_module("quality")
    _, eval_settings, _, _ = read_sweep(sweep_file)
    base = sweep_file.read_text().split("[base]\n")[1].split("[variants")[0]
    main_job = tmp_path / "main.toml"
    main_job.write_text(base)
    minutes = benchmark.run_main_job(str(main_job), tmp_path, eval_settings, force=False)
    checkpoint = tmp_path / "main-job" / "checkpoint.pt"
    stamp = checkpoint.stat().st_mtime_ns
    assert (
        minutes > 0
        and (tmp_path / "main-job" / "eval.json").is_file()
        and (tmp_path / "main-job" / "sweep_samples.png").is_file()
    )
    assert benchmark.run_main_job(str(main_job), tmp_path, eval_settings, force=False) == minutes
    assert checkpoint.stat().st_mtime_ns == stamp  # the same settings: reused, not retrained
    main_job.write_text(base.replace("epochs = 1", "epochs = 1\nlr = 0.001"))
    with pytest.raises(LabError, match="variant 'main-job' changed since"):
        benchmark.run_main_job(str(main_job), tmp_path, eval_settings, force=False)
    benchmark.run_main_job(str(main_job), tmp_path, eval_settings, force=True)
    assert checkpoint.stat().st_mtime_ns != stamp and (tmp_path / "main-job" / "eval.json").is_file()


def test_the_quality_benchmark_reuses_its_tutorial_run_and_refuses_one_trained_with_other_settings(
    sweep_file, tmp_path, monkeypatch
):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    benchmark = importlib.import_module("quality")
    tutorial = importlib.import_module("tutorial")
    monkeypatch.setattr(
        benchmark, "train_tutorial", lambda *a, **k: pytest.fail("a reusable tutorial run was trained again")
    )
    _, eval_settings, base, _ = read_sweep(sweep_file)
    run_dir = tmp_path / "tutorial"
    run_dir.mkdir()
    save_run_config(run_dir, tutorial.tutorial_config(apply(base, {"out_dir": str(run_dir)})), 384)
    (run_dir / "eval.json").write_text("{}")
    benchmark.run_tutorial(base, tmp_path, eval_settings, force=False)  # the same settings: reused
    with pytest.raises(LabError, match="variant 'tutorial' changed since"):
        benchmark.run_tutorial(apply(base, {"batch_size": 4}), tmp_path, eval_settings, force=False)
    assert (run_dir / "eval.json").is_file()  # refused, not deleted


@pytest.mark.parametrize(
    "text, message",
    [
        ("[variants]\n", "no \\[variants.NAME\\] tables"),
        ("colour = 1\n[variants.a]\n", "unknown sweep key"),
        ("[variants.a]\nepochs = 0\n", "variant 'a': config key 'epochs' must be at least 1"),
        ('[variants."a b"]\n', "must be letters, digits"),
    ],
)
def test_bad_sweep_files_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(LabError, match=message):
        read_sweep(tmp_path / "s.toml")


def test_generate_out_dir_writes_one_png_per_image_and_an_index(sweep_file, tmp_path):
    run = read_sweep(sweep_file)[0] / "plain"
    sweep(sweep_file, only=["plain"], progress=False)
    captions = tmp_path / "captions.txt"
    captions.write_text("a red flower with five round petals\n\na blue flower\n")
    out = run_lab(
        "generate",
        "a white flower",
        "--captions-file",
        str(captions),
        "--run",
        str(run),
        "--n",
        "2",
        "--seed",
        "7",
        "--out-dir",
        str(tmp_path / "imgs"),
    )
    assert out.returncode == 0, out.stderr
    index = json.loads((tmp_path / "imgs" / "index.json").read_text())["images"]
    assert [(e["caption"], e["noise_index"], e["seed"]) for e in index] == [
        (c, k, 7) for c in ("a white flower", "a red flower with five round petals", "a blue flower") for k in range(2)
    ]
    assert all(Image.open(tmp_path / "imgs" / e["file"]).size == (64, 64) for e in index)
    again = run_lab("generate", "a white flower", "--run", str(run), "--out-dir", str(tmp_path / "imgs"))
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
    for args, message in (
        (["--seed", str(2**70)], "--seed must be"),
        (["--out", str(tmp_path / "x.txt")], "must name a .png"),
        (["--device", "tpu9"], "unknown device"),
    ):
        bad = run_lab("generate", "a flower", "--run", str(run), *args)
        assert bad.returncode == 2 and message in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr
