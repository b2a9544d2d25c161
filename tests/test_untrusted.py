"""Run folders, part settings and output folders as an adversary would use them (issue 25): no code runs from a
run folder, nothing is overwritten without --force, a resume keeps what its run computes, and every refusal,
permission problem or full disk is one line naming the folder and what to do, never a traceback."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import EntryPoint
from pathlib import Path

import gradio as gr
import pytest
import torch

import lab.parts.registry as registry
from lab.checkpoint import CHECKPOINT, CONFIG, GENERATOR_WEIGHTS, METRICS, load_run, read_run_config
from lab.cli import main as cli_main
from lab.config import ExperimentConfig, apply
from lab.data import download
from lab.data.captions import load_captions
from lab.data.synthetic import generate
from lab.errors import LabError
from lab.experiments.app import check_request, expand_sweeps, run_label, swap_word
from lab.files import write_json
from lab.parts.build import build_parts
from lab.runlock import run_lock
from lab.sample.pipeline import Pipeline
from lab.train.trainer import train
from tests.helpers import ROOT

TINY = {"generator.width": 8, "discriminator.width": 8, "batch_size": 8, "epochs": 1, "threads": 1, "split": "all"}


def _config(folder: Path, data: Path, **overrides) -> ExperimentConfig:
    base = {"data_dir": str(data), "encoder": "minilm", "cache_dir": str(folder / "cache"), **TINY}
    return apply(ExperimentConfig(), {**base, **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_root):
    """One tiny finished run (registered parts) and one trained with a `module:attribute` generator."""
    threads = torch.get_num_threads()
    folder = tmp_path_factory.mktemp("untrusted")
    plain = train(_config(folder, synthetic_root, out_dir=str(folder / "plain")), progress=False)
    spec = _config(folder, synthetic_root, out_dir=str(folder / "spec"), generator="solutions.ex04_generator:Generator")
    with_code = train(apply(spec, {"generator.width": 8}), progress=False)
    torch.set_num_threads(threads)
    return plain, with_code


def _copy(run: Path, tmp_path: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(run, tmp_path / name, ignore=shutil.ignore_patterns(".lock")))


def _edit_config(run: Path, **config) -> None:
    blob = json.loads((run / CONFIG).read_text())
    blob["config"].update(config)
    (run / CONFIG).write_text(json.dumps(blob))


def _one_line(capsys, command: str, pattern: str) -> str:
    """The command's stderr must end in one `lab CMD: error: ...` line matching `pattern`, with no traceback
    (before it there may be progress bars, e.g. the encoder's weights loading)."""
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and err.count(f"lab {command}: error: ") == 1, err
    assert last.startswith(f"lab {command}: error: ") and re.search(pattern, last), last
    return last


# --- 1. a run folder is data, never code ----------------------------------------------------------------------


@pytest.fixture
def evil_module(tmp_path, monkeypatch):
    """A module that leaves a marker file when imported: proof that a run folder made the lab import it."""
    marker = tmp_path / "imported"
    (tmp_path / "evil_part.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\nGenerator = object\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "evil_part", raising=False)
    return marker


LOADERS = {
    "generate": lambda run, out: ["generate", "a red flower", "--run", str(run), "--out", str(out / "g.png")],
    "eval": lambda run, out: ["eval", "--run", str(run), "--n", "4"],
    "resume": lambda run, out: ["train", "--resume", str(run), "--quiet"],
}


@pytest.mark.parametrize("command", LOADERS)
@pytest.mark.parametrize("part", ["os:system", "evil_part:Generator"])
def test_code_named_in_a_run_folder_is_never_imported(trained, tmp_path, evil_module, capsys, command, part):
    run = _copy(trained[0], tmp_path)
    marker = tmp_path / "ran-a-command"
    _edit_config(run, generator={"name": part, "command": f"touch {marker}"})
    assert cli_main(LOADERS[command](run, tmp_path)) == 2
    line = _one_line(
        capsys, "train" if command == "resume" else command, rf"names code to import \(generator '{part}'\)"
    )
    assert "--trust-code" in line and "docs/plugins.md" in line
    assert not marker.exists() and not evil_module.exists() and "evil_part" not in sys.modules
    with pytest.raises(LabError, match="trust_code=True"):
        Pipeline.from_run(run)
    with pytest.raises(LabError, match="--trust-code"):
        load_run(run)
    assert not marker.exists() and not evil_module.exists()


def test_the_compare_page_refuses_a_run_naming_code(trained, tmp_path, evil_module):
    from lab.experiments.app import build_demo

    run = _copy(trained[0], tmp_path)
    _edit_config(run, encoder="evil_part:encoder")
    with pytest.raises(LabError, match=r"names code to import \(text encoder 'evil_part:encoder'\)"):
        build_demo([run])
    assert not evil_module.exists()


def test_a_run_trained_with_an_exercise_loads_when_trusted(trained, tmp_path, capsys):
    run = trained[1]
    with pytest.raises(LabError, match=r"generator 'solutions\.ex04_generator:Generator'.*add --trust-code"):
        load_run(run)
    assert load_run(run, trust_code=True).epoch == 1
    out = tmp_path / "g.png"
    assert cli_main(["generate", "a red flower", "--run", str(run), "--out", str(out), "--trust-code"]) == 0
    assert out.is_file()
    resumed = _copy(run, tmp_path, "resumed")
    capsys.readouterr()
    assert cli_main(["train", "--resume", str(resumed), "--quiet", "--epochs=2"]) == 2
    _one_line(capsys, "train", "add --trust-code")
    assert cli_main(["train", "--resume", str(resumed), "--quiet", "--epochs=2", "--trust-code"]) == 0
    assert [m["epoch"] for m in map(json.loads, (resumed / METRICS).read_text().splitlines())] == [1, 2]


def test_command_line_parts_that_are_not_parts_are_one_line(synthetic_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # where exercises/ is
    common = [f"--data_dir={synthetic_root}", f"--cache_dir={tmp_path}/cache", "--quiet"]
    common += [f"--{k}={v}" for k, v in TINY.items()]
    cases = {
        "--generator=builtins:dict": r"'builtins:dict' is not a generator: generators subclass lab\.interfaces\.Generator",
        "--encoder=os:getcwd": r"'os:getcwd' is not a text encoder: it made a str, not a TextEncoder",
        "--generator=exercises/ex04_generator.py": r"is a file path; name the module and the class instead: "
        r"exercises\.ex04_generator:Generator \(run from the folder that holds exercises/\)",
        "--loss=no_such_module:Loss": r"cannot import loss recipe 'no_such_module:Loss': ModuleNotFoundError",
    }
    for i, (arg, pattern) in enumerate(cases.items()):
        encoder = [] if "encoder" in arg else ["--encoder=minilm"]
        assert cli_main(["train", arg, *encoder, *common, f"--out_dir={tmp_path}/run{i}"]) == 2
        _one_line(capsys, "train", pattern)


def test_a_plugin_that_raises_at_import_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin.py").write_text("x = 1\nraise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = EntryPoint(name="broken", value="broken_plugin", group=registry.ENTRY_POINT_GROUP)
    real = list(registry.entry_points(group=registry.ENTRY_POINT_GROUP))
    monkeypatch.setattr(registry, "entry_points", lambda group: [*real, broken])
    monkeypatch.setattr(registry, "_loaded", False)
    with pytest.raises(LabError) as caught:
        registry.GENERATORS.get("dcgan")
    message = str(caught.value)
    assert message.startswith("plugin 'broken' (broken_plugin) fails to import: RuntimeError: boom (")
    assert message.endswith("broken_plugin.py line 2); fix it or uninstall it") and "\n" not in message
    (tmp_path / "spec_raises.py").write_text("import json\njson.loads('{')\n")
    monkeypatch.setattr(registry, "entry_points", lambda group: real)
    with pytest.raises(
        LabError, match=r"cannot import generator 'spec_raises:G': JSONDecodeError: .*spec_raises\.py line 2\)$"
    ):
        registry.GENERATORS.get("spec_raises:G")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"generator.width": math.nan}, r"generator 'dcgan' setting 'width' must be a finite number, got nan"),
        ({"generator.kl_weight": math.inf}, r"setting 'kl_weight' must be a finite number, got inf"),
        ({"discriminator.width": -math.inf}, r"setting 'width' must be a finite number, got -inf"),
        ({"generator.width": 1e8}, r"cannot build generator 'dcgan' with \{'width': 100000000\}: RuntimeError"),
        ({"discriminator.width": 100_000}, r"discriminator 'dcgan' with \{'width': 100000\} would have .* parameters"),
        ({"generator": "dfgan", "generator.width": 50_000}, r"over the limit of 1e\+09"),
        ({"generator.width": 8.5}, r"setting 'width' expects int, got 8\.5"),
        ({"generator.cond_aug": 1}, r"setting 'cond_aug' expects bool, got 1"),
        ({"loss.l1_weight": "heavy"}, r"setting 'l1_weight' expects float, got 'heavy'"),
        ({"loss.feature_weight": [1, 2]}, r"setting 'feature_weight' must be a number, true/false or text, got list"),
    ],
)
def test_part_settings_are_declared_typed_finite_and_sane(settings, message):
    with pytest.raises(LabError, match=message):
        build_parts(apply(ExperimentConfig(), settings), text_dim=16)


def test_absurd_settings_in_a_run_folder_or_on_the_command_line_are_one_line(trained, tmp_path, capsys):
    run = _copy(trained[0], tmp_path)
    _edit_config(run, generator={"name": "dcgan", "width": math.nan})  # json writes NaN, and reads it back
    with pytest.raises(LabError, match=r"setting 'width' must be a finite number, got nan"):
        load_run(run)
    _edit_config(run, generator={"name": "dcgan", "width": 10**8})
    assert cli_main(["generate", "a red flower", "--run", str(run), "--out", str(tmp_path / "g.png")]) == 2
    _one_line(capsys, "generate", r"cannot build generator 'dcgan' with \{'width': 100000000\}")
    assert cli_main(["train", "--generator.width=nan", "--encoder=minilm", f"--out_dir={tmp_path}/new"]) == 2
    _one_line(capsys, "train", r"setting 'width' must be a finite number, got nan")


def test_an_eight_wide_part_still_builds_exactly_as_before():
    torch.manual_seed(0)
    g, d, _ = build_parts(apply(ExperimentConfig(), {"generator.width": 8, "discriminator.width": 8}), text_dim=16)
    torch.manual_seed(0)
    from plugins.dcgan import DCGANDiscriminator, DCGANGenerator

    same_g, same_d = DCGANGenerator(text_dim=16, width=8), DCGANDiscriminator(text_dim=16, width=8)
    for a, b in ((g, same_g), (d, same_d)):  # the size check on the meta device draws no random numbers
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# --- 3. nothing overwritten without --force ---------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_train_refuses_a_folder_with_files_unless_forced(trained, tmp_path, synthetic_root, capsys):
    finished = _copy(trained[0], tmp_path, "finished")
    (finished / CHECKPOINT).unlink()  # a finished run whose checkpoint was deleted
    (finished / "eval.json").write_text("{}")
    own = tmp_path / "own"
    own.mkdir()
    (own / CONFIG).write_text('{"epochs": 3}')  # a user's own config file
    for folder in (finished, own):
        before = _snapshot(folder)
        args = ["train", f"--data_dir={synthetic_root}", "--encoder=minilm", "--quiet", f"--out_dir={folder}"]
        assert cli_main(args + [f"--{k}={v}" for k, v in TINY.items()]) == 2
        _one_line(capsys, "train", rf"--out_dir {folder} is not empty; its files could be overwritten .*--force")
        assert _snapshot(folder) == before

    (finished / "notes.txt").write_text("mine")
    config = _config(tmp_path, synthetic_root, out_dir=str(finished), seed=3)
    train(config, progress=False, force=True)
    assert not (finished / "eval.json").exists(), "the old run's scores would describe another model"
    assert (finished / "notes.txt").read_text() == "mine"
    assert read_run_config(finished)[0].seed == 3 and len((finished / METRICS).read_text().splitlines()) == 1

    with pytest.raises(LabError, match=r"already holds a run; use --resume .* or --force"):
        train(config, progress=False)
    never = tmp_path / "never"  # stopped before its first checkpoint: nothing to lose, so no --force needed
    never.mkdir()
    shutil.copy(finished / CONFIG, never / CONFIG)
    train(_config(tmp_path, synthetic_root, out_dir=str(never)), progress=False)
    assert (never / GENERATOR_WEIGHTS).is_file()


def test_resume_refuses_changes_to_what_the_run_computes_and_records_the_rest(trained, tmp_path, capsys):
    run = _copy(trained[0], tmp_path)
    before = _snapshot(run)
    args = ["train", "--resume", str(run), "--quiet"]
    assert cli_main(args + ["--lr=5e-3", "--batch_size=4", "--seed=7", "--data_dir=other"]) == 2
    line = _one_line(
        capsys, "train", r"data_dir \('.*' -> 'other'\), batch_size \(8 -> 4\), seed \(0 -> 7\) cannot change"
    )
    assert "another --out_dir" in line
    assert _snapshot(run) == before
    assert cli_main(args + ["--lr=5e-3", "--epochs=2"]) == 0
    blob = json.loads((run / CONFIG).read_text())
    assert blob["config"]["lr"] == 5e-3 and blob["config"]["epochs"] == 2
    assert blob["resumed"] == [{"epoch": 1, "step": 0, "changed": {"epochs": [1, 2], "lr": [2e-4, 5e-3]}}]
    assert read_run_config(run)[0].lr == 5e-3


def test_generate_out_dir_keeps_what_is_there(trained, tmp_path, capsys):
    folder, afile = tmp_path / "pngs", tmp_path / "afile"
    folder.mkdir()
    (folder / "00000_00.png").write_bytes(b"my own picture")
    afile.write_text("mine")
    base = ["generate", "a red flower", "--run", str(trained[0]), "--n", "1"]
    assert cli_main(base + ["--out-dir", str(folder)]) == 2
    _one_line(capsys, "generate", r"--out-dir .*pngs is not empty; its files could be overwritten \(00000_00\.png\)")
    assert (folder / "00000_00.png").read_bytes() == b"my own picture"
    assert cli_main(base + ["--out-dir", str(afile)]) == 2
    _one_line(capsys, "generate", r"--out-dir .*afile is a file; give a folder")
    assert cli_main(base + ["--out-dir", str(afile / "under")]) == 2
    _one_line(capsys, "generate", r"cannot create --out-dir .*afile/under: ")
    assert afile.read_text() == "mine"
    assert cli_main(base + ["--out-dir", str(folder), "--force"]) == 0
    assert (folder / "00000_00.png").read_bytes().startswith(b"\x89PNG") and (folder / "index.json").is_file()


def test_download_refuses_to_extract_over_a_data_set_unless_forced(tmp_path, capsys):
    import zipfile

    dest = tmp_path / "flowers"
    (dest / "captions").mkdir(parents=True)
    with zipfile.ZipFile(dest / download.ARCHIVE, "w") as zf:
        zf.writestr("captions/a.txt", "a red flower\n")
    (dest / "captions" / "a.txt").write_text("my hand-edited caption\n")
    assert cli_main(["data", "download", "flowers", "--dest", str(dest), "--url", "http://unused"]) == 2
    _one_line(capsys, "data", r"--dest .*flowers is not empty; its files could be overwritten \(captions\)")
    assert (dest / "captions" / "a.txt").read_text() == "my hand-edited caption\n"
    assert cli_main(["data", "download", "flowers", "--dest", str(dest), "--url", "http://unused", "--force"]) == 0
    assert (dest / "captions" / "a.txt").read_text() == "a red flower\n"


# --- 5. permissions and a full disk -------------------------------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(where: Path, options: str):
    """A real tmpfs mounted at `where` (root only); skips the test where mounting is not allowed."""
    where.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({made.stderr.strip() or 'not root'}); the monkeypatched tests cover it"
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


@contextlib.contextmanager
def _not_root():
    """Permissions as an ordinary user sees them: root reads and writes anything, so drop to `nobody` for a while."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def shared_tmp():
    """A folder that `nobody` can reach (pytest's own tmp folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="t2i-untrusted-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_read_only_out_dir_is_one_line_naming_it(tmp_path, synthetic_root, shared_tmp, capsys):
    locked = shared_tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    with _not_root(), pytest.raises(LabError) as caught, run_lock(locked):
        pass
    assert str(caught.value) == (
        f"cannot write in the run directory {locked}: Permission denied; check its permissions (ls -l; chmod/chown) "
        "or choose another folder"
    )
    with _tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        args = ["train", f"--data_dir={synthetic_root}", "--encoder=minilm", f"--out_dir={ro}/run"]
        assert cli_main(args) == 2
        _one_line(
            capsys,
            "train",
            rf"cannot create the run directory {ro}/run: Read-only file system; choose a folder on a writable disk",
        )


def test_unreadable_data_is_one_line_naming_the_folder(shared_tmp):
    data = generate(shared_tmp / "data", n=3, size=32, progress=False)
    (data / "images").chmod(0)
    with _not_root(), pytest.raises(LabError) as caught:
        load_captions(data)
    assert str(caught.value) == (
        f"cannot read the data in {data / 'images'}: Permission denied; check its permissions (ls -l; chmod/chown) or choose another folder"
    )
    (data / "images").chmod(0o755)
    data.chmod(0)
    with _not_root(), pytest.raises(LabError, match=rf"cannot read the data in {data}: Permission denied"):
        load_captions(data)
    data.chmod(0o755)


def test_a_full_disk_outside_training_is_one_line_and_keeps_what_was_there(trained, tmp_path, capsys):
    with _tmpfs(tmp_path / "small", "size=48k") as disk:
        write_json({"kept": True}, disk / "config.json")
        with pytest.raises(LabError) as caught:
            write_json({"big": "x" * 100_000}, disk / "config.json")
        assert str(caught.value) == (
            f"cannot write {disk / 'config.json'}: No space left on device (any previous version of it is unchanged); "
            "free some space on that disk or choose a folder on another one"
        )
        assert json.loads((disk / "config.json").read_text()) == {"kept": True}
        assert [p.name for p in disk.iterdir()] == ["config.json"], "a temp file was left behind"
        assert cli_main(["data", "synthetic", str(disk / "flowers"), "--n", "200", "--size", "64"]) == 2
        _one_line(
            capsys,
            "data",
            r"cannot write the synthetic flowers into .*flowers: No space left on device; free some space",
        )
        shutil.rmtree(disk / "flowers")
        out = ["generate", "a red flower", "--run", str(trained[0]), "--n", "30", "--out-dir", str(disk / "pngs")]
        assert cli_main(out) == 2
        _one_line(capsys, "generate", r"cannot write .*pngs/\d+_\d+\.png: No space left on device .*free some space")


def test_full_disk_while_installing_weights_is_one_line(tmp_path, monkeypatch):
    from lab.data import weights

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "home"))

    monkeypatch.setenv("T2I_LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(weights.tempfile, "TemporaryDirectory", full)
    with pytest.raises(LabError, match=r"cannot install the MPNet weights into .*home: No space left on device; free"):
        weights.install_mpnet()


# --- 6. the compare page --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b'{"fid": 1', b"{}", b'{"protocol": 3, "epoch": 1}', b"[1, 2]", b"\xff\xfe", b'{"epoch": 1, "protocol": {}}'],
)
def test_compare_shows_a_run_with_a_damaged_eval_json_without_scores(trained, tmp_path, capsys, content):
    run = _copy(trained[0], tmp_path)
    (run / "eval.json").write_bytes(content)
    label = run_label(load_run(run))
    assert f"### {run.name}" in label and "FID" not in label
    assert f"no scores: {run / 'eval.json'} is damaged or not from `lab eval`" in label
    notes = capsys.readouterr().err.strip().splitlines()
    assert len(notes) == 1 and notes[0].startswith("note: ") and f"lab eval --run {run}" in notes[0]


@pytest.mark.parametrize("seed", [math.nan, math.inf, -1, 0.5, None, "7"])
def test_compare_refuses_a_seed_that_is_not_a_whole_number_in_one_line(seed):
    with pytest.raises(gr.Error) as caught:
        check_request("a red flower", seed, 4)
    assert str(caught.value.message).startswith("seed must be a whole number from 0 to")
    assert "\n" not in str(caught.value.message)


def test_swap_words_are_text_not_patterns():
    assert swap_word("a red flower", "red", "blue\\") == "a blue\\ flower"
    assert swap_word("a red flower", "red", r"\1\g<0>") == r"a \1\g<0> flower"
    assert swap_word("a c++ flower", "c++", "rose") == "a rose flower"
    with pytest.raises(gr.Error) as caught:
        swap_word("a red flower", "r\\d", "blue")
    assert caught.value.message == "the caption has no word 'r\\d'"


@pytest.mark.parametrize(
    "content", [b'{"rows": [{"variant"', b"{}", b'{"rows": [{"name": 1}]}', b'{"rows": [{"variant": "../../etc"}]}']
)
def test_a_damaged_leaderboard_is_one_line(tmp_path, content):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "leaderboard.json").write_bytes(content)
    with pytest.raises(LabError, match=r"leaderboard\.json (is damaged or not from `lab sweep`|names a variant that)"):
        expand_sweeps([sweep])


def test_a_sweep_with_a_damaged_saved_config_is_one_line_and_force_retrains_it(tmp_path):
    from lab.experiments.sweep import reusable

    run = tmp_path / "variant"
    run.mkdir()
    (run / "config.json").write_bytes(b'{"config": ')
    config = apply(ExperimentConfig(), {"out_dir": str(run)})
    with pytest.raises(LabError, match=r"config\.json is damaged .*--force to train it again"):
        reusable("variant", config, force=False)
    assert reusable("variant", config, force=True) is False and not run.exists()
