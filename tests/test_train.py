import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import lab.train.distributed as distributed
import lab.train.trainer as train_module
from lab.checkpoint import load_checkpoint, load_run, read_metrics
from lab.errors import LabError
from lab.train.distributed import Distributed
from lab.train.trainer import train
from plugins.gan_cls import GanClsLoss
from tests.helpers import ROOT, run_lab


def test_cli_trains_and_generates_end_to_end(tiny_config, tmp_path, synthetic_root):
    run = tmp_path / "cli-run"
    args = [
        f"--data_dir={synthetic_root}",
        "--encoder=minilm",
        "--generator.width=8",
        "--discriminator.width=8",
        "--batch_size=8",
        "--epochs=4",
        "--split=all",
        f"--cache_dir={tmp_path / 'cache'}",
        f"--out_dir={run}",
        "--sample_every=2",
    ]
    out = run_lab("train", "--quiet", *args)
    assert out.returncode == 0, out.stderr
    assert "Loading weights" not in out.stderr and "it/s" not in out.stderr, f"--quiet drew a bar: {out.stderr}"
    metrics = read_metrics(run)
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4]
    assert {"d_loss", "g_loss", "d_real", "d_wrong", "d_fake", "g_adv", "g_feature", "g_l1", "images_per_s"} <= set(
        metrics[0]
    )
    assert metrics[-1]["g_l1"] < metrics[0]["g_l1"], "the generator did not move towards the real images"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_002.png", "epoch_004.png"]
    assert Image.open(run / "losses.png").size[0] > 300

    gen = run_lab(
        "generate",
        "a red flower with five round petals",
        "a blue flower",
        "--run",
        str(run),
        "--n",
        "3",
        "--out",
        str(tmp_path / "g.png"),
    )
    assert gen.returncode == 0, gen.stderr
    assert "note: these images are nearly flat grey" in gen.stderr and "(4 epoch(s) here)" in gen.stderr, (
        "12 steps of a width-8 G still draw flat grey, and a newcomer is told that this is expected"
    )
    grid = Image.open(tmp_path / "g.png")
    assert grid.height == 2 * 64 and grid.width > 3 * 64
    bad = run_lab("generate", "   ", "--run", str(run))
    assert bad.returncode == 2 and "caption is empty" in bad.stderr and "Traceback" not in bad.stderr


def test_flat_note_speaks_only_of_images_without_contrast(synthetic_root):
    from lab.sample.generate import flat_note

    grey = 1e-3 * torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert "nearly flat grey" in flat_note(grey, 2) and "(2 epoch(s) here)" in flat_note(grey, 2)
    paths = sorted((synthetic_root / "images").glob("*.jpg"))[:4]
    flowers = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in paths])
    assert flat_note(flowers.float() / 127.5 - 1, 2) is None, "drawn flowers are not flat"
    assert flat_note(torch.full((2, 3, 8, 8), 0.6) + grey[:2, :, :8, :8], 9) is not None, "one flat colour is flat too"


def _weights(run_dir):
    state = load_checkpoint(run_dir)
    return {
        **{f"g.{k}": v for k, v in state["generator"].items()},
        **{f"d.{k}": v for k, v in state["discriminator"].items()},
    }


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"


def test_resume_continues_exactly_after_an_epoch_or_a_ctrl_c(tiny_config, tmp_path, monkeypatch):
    straight = train(tiny_config(out_dir=str(tmp_path / "straight")), progress=False)

    halves = tmp_path / "halves"
    train(tiny_config(out_dir=str(halves), epochs=1), progress=False)
    train(tiny_config(out_dir=str(halves), epochs=2), resume=halves, progress=False)
    _assert_same(_weights(straight), _weights(halves))

    interrupted, calls, real_step = tmp_path / "interrupted", [0], train_module.train_step

    def step_then_ctrl_c(*args):
        calls[0] += 1
        if calls[0] == 5:  # epoch 2, step 2: a real first Ctrl-C, so this step still finishes
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*args)

    monkeypatch.setattr(train_module, "train_step", step_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(out_dir=str(interrupted)), progress=False)
    assert (load_checkpoint(interrupted)["epoch"], load_checkpoint(interrupted)["step"]) == (1, 2)
    monkeypatch.setattr(train_module, "train_step", real_step)
    train(tiny_config(out_dir=str(interrupted)), resume=interrupted, progress=False)
    _assert_same(_weights(straight), _weights(interrupted))

    def losses(run):  # everything but the timing
        return [{k: v for k, v in m.items() if k != "images_per_s"} for m in read_metrics(run)]

    assert losses(interrupted) == losses(straight)


class NanAfter(GanClsLoss):
    """A loss recipe that blows up on its fourth discriminator step (epoch 2, step 1 with 3 steps an epoch)."""

    calls = 0

    def discriminator_loss(self, *args):
        out = super().discriminator_loss(*args)
        NanAfter.calls += 1
        if NanAfter.calls >= 4:
            out.total = out.total * float("nan")
            out.terms["d_real"] = float("nan")
        return out


def nan_after(**kwargs):
    return NanAfter(**kwargs)


@pytest.mark.parametrize("sync_every", [2, 25])  # read back in the middle of epoch 2, or only at its end
def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path, sync_every):
    NanAfter.calls = 0
    config = tiny_config(loss="tests.test_train:nan_after", epochs=3, sync_every=sync_every)
    with pytest.raises(LabError, match=r"loss became nan .* at epoch 2 step 1; .* last good checkpoint is kept in"):
        train(config, progress=False)
    assert load_checkpoint(tmp_path / "run")["epoch"] == 1
    assert load_run(tmp_path / "run", trust_code=True).epoch == 1  # its loss recipe is this file's code


def test_losses_are_read_back_once_every_sync_every_steps(tiny_config, tmp_path, monkeypatch):
    """On a GPU every read of a loss (`.item()`, `float()`, `.tolist()`) makes the host wait for the GPU. The loop
    reads the terms back once per `sync_every` steps, and its epoch means are still the means of every step's terms."""
    trainer = train_module.Trainer(
        tiny_config(batch_size=3, epochs=1, sync_every=4), tmp_path / "run", resume=False, progress=False
    )
    steps, real_step = [], train_module.train_step
    monkeypatch.setattr(train_module, "train_step", lambda *args: steps.append(real_step(*args)) or steps[-1])
    reads = []
    for name in ("item", "tolist", "__float__"):

        def counted(self, *args, real=getattr(torch.Tensor, name), name=name):  # noqa: B008 (bound per loop turn)
            caller = sys._getframe(1)
            if any(
                Path(caller.f_code.co_filename).is_relative_to(ROOT / d) for d in ("lab", "plugins")
            ):  # the lab's reads, not torch's own (Adam's CPU step count; a venv may sit inside ROOT)
                reads.append(f"{name} at {Path(caller.f_code.co_filename).name}:{caller.f_lineno}")
            return real(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counted)
    trainer.run()
    monkeypatch.undo()
    assert len(steps) == 8  # 24 captions in batches of 3
    assert len(reads) == 8 // 4, reads

    (epoch,) = read_metrics(tmp_path / "run")
    for key in steps[0]:
        assert epoch[key] == pytest.approx(sum(float(terms[key]) for terms in steps) / len(steps), abs=1e-6), key


def test_ddp_collectives_get_tensors_on_the_process_device(tiny_config, tmp_path, monkeypatch):
    """NCCL only moves CUDA tensors: the epoch's loss means and the time-limit flag must live on the rank's device
    ('meta' here, a device no CPU-only default would land on)."""
    trainer = train_module.Trainer(tiny_config(time_limit=1.0), tmp_path / "run", resume=False, progress=False)
    trainer.dist = Distributed(rank=0, world=2, device=torch.device("meta"))
    trainer.state.sums = {"d_loss": 1.0}
    devices = []

    class Collected(Exception):
        """Stops the caller at the collective: a meta tensor has no values to read back."""

    def collective(tensor, *args):
        devices.append(tensor.device)
        raise Collected

    monkeypatch.setattr(distributed, "dist", SimpleNamespace(all_reduce=collective, broadcast=collective))
    for method, args in ((trainer._time_is_up, ()), (trainer._end_epoch, (1, 1.0))):
        with pytest.raises(Collected):
            method(*args)
    assert devices == [torch.device("meta")] * 2


def test_ddp_ranks_agree_to_stop_only_where_the_loop_syncs(tiny_config, tmp_path, monkeypatch):
    """Rank 0's time-limit flag is a broadcast, which makes every rank wait for its GPU: once per `sync_every` steps."""
    trainer = train_module.Trainer(
        tiny_config(batch_size=3, epochs=1, sync_every=2, time_limit=60.0),
        tmp_path / "run",
        resume=False,
        progress=False,
    )
    trainer.dist = Distributed(rank=0, world=2, device=torch.device("cpu"))
    at_step = []

    def all_gather_object(out, obj):
        out[:] = [obj] * len(out)

    fake = SimpleNamespace(
        broadcast=lambda *_: at_step.append(trainer.state.step),
        all_reduce=lambda *_: None,
        all_gather_object=all_gather_object,
    )
    monkeypatch.setattr(distributed, "dist", fake)
    trainer.run()
    assert [s for s in at_step if s] == [
        2,
        4,
    ]  # this rank's half of 24 captions: 4 steps; the other checks come between epochs (step 0)
    assert trainer.state.epoch == 1


def _learning_rates_per_step(trainer, monkeypatch, seconds_per_step=0.0):
    """Run the trainer, recording (G's lr, D's lr) at every step; each step may also spend `seconds_per_step` of budget."""
    seen, real_step = [], train_module.train_step

    def step(*args):
        seen.append((trainer.opt_g.param_groups[0]["lr"], trainer.opt_d.param_groups[0]["lr"]))
        trainer.state.train_seconds += seconds_per_step
        return real_step(*args)

    monkeypatch.setattr(train_module, "train_step", step)
    trainer.run()
    return seen


def test_lr_decay_falls_linearly_to_zero_over_the_epochs_and_resumes_on_schedule(tiny_config, tmp_path, monkeypatch):
    config = tiny_config(batch_size=6, epochs=2, lr=1e-3, lr_d=4e-3, lr_decay=True)  # 24 captions: 4 steps an epoch
    seen = _learning_rates_per_step(
        train_module.Trainer(config, tmp_path / "run", resume=False, progress=False), monkeypatch
    )
    assert seen == [pytest.approx((1e-3 * (1 - k / 8), 4e-3 * (1 - k / 8))) for k in range(8)]

    resumed = train_module.Trainer(
        tiny_config(batch_size=6, epochs=4, lr=1e-3, lr_d=4e-3, lr_decay=True),
        tmp_path / "run",
        resume=True,
        progress=False,
    )
    assert _learning_rates_per_step(resumed, monkeypatch) == [
        pytest.approx((1e-3 * (1 - k / 16), 4e-3 * (1 - k / 16))) for k in range(8, 16)
    ]

    constant = train_module.Trainer(
        tiny_config(batch_size=6, epochs=1, lr=1e-3), tmp_path / "constant", resume=False, progress=False
    )
    assert _learning_rates_per_step(constant, monkeypatch) == [(1e-3, 1e-3)] * 4


def test_lr_decay_follows_the_time_limit_when_it_runs_out_first(tiny_config, tmp_path, monkeypatch):
    trainer = train_module.Trainer(
        tiny_config(batch_size=6, epochs=1000, lr=1e-3, time_limit=1.0, lr_decay=True),
        tmp_path / "run",
        resume=False,
        progress=False,
    )
    seen = _learning_rates_per_step(trainer, monkeypatch, seconds_per_step=15.0)  # a quarter of the minute per step
    assert [g for g, _ in seen] == pytest.approx(
        [1e-3, 0.75e-3, 0.5e-3, 0.25e-3], abs=3e-5
    )  # plus the steps' own seconds


class TinyEncoder:
    name, dim, cache_key = "tiny", 8, "tiny-8"

    def encode(self, texts):
        return torch.ones(len(texts), 8)


def tiny_encoder(**kwargs):
    return TinyEncoder()


def test_resume_refuses_a_mismatched_encoder_or_image_size(tiny_config, tmp_path):
    run = train(tiny_config(epochs=1), progress=False)
    with pytest.raises(LabError, match=r"encoder \('minilm' -> 'tests.test_train:tiny_encoder'\) cannot change"):
        train(tiny_config(epochs=2, encoder="tests.test_train:tiny_encoder"), resume=run, progress=False)
    with pytest.raises(LabError, match=r"image_size \(64 -> 128\) cannot change"):
        train(tiny_config(epochs=2, image_size=128), resume=run, progress=False)
    with pytest.raises(LabError, match="already holds a run"):
        train(tiny_config(), progress=False)


def test_ctrl_c_in_a_real_process_saves_and_resume_finishes(tmp_path, synthetic_root):
    run = tmp_path / "sigint"
    args = [
        sys.executable,
        "-m",
        "lab.cli",
        "train",
        "--quiet",
        f"--data_dir={synthetic_root}",
        "--encoder=minilm",
        "--generator.width=8",
        "--discriminator.width=8",
        "--batch_size=4",
        "--epochs=200",
        "--split=all",
        f"--cache_dir={tmp_path / 'cache'}",
        f"--out_dir={run}",
        "--threads=1",
    ]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (run / "metrics.jsonl").is_file() or not read_metrics(run):
        time.sleep(0.5)
        assert time.time() < deadline and proc.poll() is None, (
            proc.stderr.read() if proc.poll() is not None else "timeout"
        )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Continue with: lab train --resume" in err and "Traceback" not in err
    saved = load_checkpoint(run)["epoch"]
    assert saved >= 1
    done = run_lab("train", "--quiet", "--resume", str(run), f"--epochs={saved + 1}")
    assert done.returncode == 0, done.stderr
    assert [m["epoch"] for m in read_metrics(run)][-1] == saved + 1
    blob = json.loads((run / "config.json").read_text())  # the override is recorded, with where it took effect
    assert blob["config"]["epochs"] == saved + 1 and blob["resumed"][-1]["changed"] == {"epochs": [200, saved + 1]}


def test_sample_grid_rows_show_different_flowers(tiny_config, tmp_path):
    from lab.train.run_log import SAMPLE_CAPTIONS
    from lab.train.trainer import Trainer

    trainer = Trainer(tiny_config(captions="all"), tmp_path / "samples-run", resume=False, progress=False)
    rows = trainer.sample_texts
    images = {int(trainer.dataset.caption_image[trainer.dataset.texts.index(t)]) for t in rows}
    assert len(rows) == SAMPLE_CAPTIONS and len(images) == SAMPLE_CAPTIONS
    path = trainer.save_samples()
    assert Image.open(path).size == (260 + 6 * 64, SAMPLE_CAPTIONS * 64)


def test_resume_on_another_process_count_restarts_the_interrupted_epoch(tiny_config, tmp_path, monkeypatch, capsys):
    run, calls, real_step = tmp_path / "world", [0], train_module.train_step

    def ctrl_c_on_second_step(*args):
        calls[0] += 1
        if calls[0] == 2:  # a real first Ctrl-C: this step finishes, then the run saves and stops
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*args)

    monkeypatch.setattr(train_module, "train_step", ctrl_c_on_second_step)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(out_dir=str(run), epochs=1), progress=False)
    state = load_checkpoint(run)
    assert (state["epoch"], state["step"]) == (0, 2)
    state["world"], state["rng"] = 2, state["rng"] * 2  # as if saved by a 2-process torchrun job
    torch.save(state, run / "checkpoint.pt")
    monkeypatch.setattr(train_module, "train_step", real_step)
    train(tiny_config(out_dir=str(run), epochs=1), resume=run, progress=False)
    assert "epoch 1 restarts" in capsys.readouterr().err
    assert [m["epoch"] for m in read_metrics(run)] == [1]


def test_a_resume_with_nothing_left_to_train_says_so(tiny_config, tmp_path):
    run = train(tiny_config(epochs=1), progress=False)
    with pytest.raises(LabError, match=r"has trained 1 epoch\(s\) already; give a larger --epochs"):
        train(tiny_config(epochs=1), resume=run, progress=False)
    timed = train(tiny_config(out_dir=str(tmp_path / "timed"), epochs=1, time_limit=1e-6), progress=False)
    with pytest.raises(LabError, match=r"time limit of 1e-06 min is already spent .*give a larger --time_limit"):
        train(tiny_config(out_dir=str(timed), epochs=3, time_limit=1e-6), resume=timed, progress=False)
