"""The GPU user's settings, checked on the CPU: mixed precision, torch.compile's fallback, live TensorBoard logs."""

import math
import sys

import pytest
import torch

import lab.train.trainer as train_module
from lab.checkpoint import load_checkpoint, read_metrics
from lab.cli import build_parser
from lab.config import ExperimentConfig, load, result_settings
from lab.device import resolve_precision
from lab.errors import LabError
from lab.sample.pipeline import Pipeline
from lab.tblog import INSTALL_HINT
from lab.train import compile as compile_trial
from lab.train.trainer import train
from plugins.gan_cls import GanClsLoss


def _weights(run_dir):
    state = load_checkpoint(run_dir)
    return {
        **{f"g.{k}": v for k, v in state["generator"].items()},
        **{f"d.{k}": v for k, v in state["discriminator"].items()},
        **{f"ema.{k}": v for k, v in state["ema"].items()},
    }


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_precision_settings_resolve_and_are_checked():
    assert resolve_precision("auto", "cpu") == "fp32"  # a CPU gets no autocast unless asked
    assert resolve_precision("bf16", "cpu") == "bf16" and resolve_precision("fp16", "cpu") == "fp16"
    with pytest.raises(LabError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", "cpu")
    with pytest.raises(LabError, match="precision' must be 'auto', 'bf16', 'fp16' or 'fp32'"):
        load(overrides=["--precision=half"])
    # A run saved before these keys existed trained in fp32, uncompiled: its settings equal today's defaults.
    old = {k: v for k, v in ExperimentConfig().to_dict().items() if k not in ("precision", "compile", "log")}
    assert result_settings(old) == result_settings(ExperimentConfig().to_dict())
    assert result_settings({"log": "tensorboard"}) == result_settings({})  # where losses are written changes no weight
    assert result_settings({"precision": "bf16"}) != result_settings({}) and result_settings(
        {"compile": True}
    ) != result_settings({})
    assert build_parser().parse_args(["eval", "--run", "r", "--precision", "fp32"]).precision == "fp32"
    assert build_parser().parse_args(["eval", "--run", "r"]).precision == "run"


def test_fp32_never_enters_autocast(tiny_config, tmp_path, monkeypatch):
    """fp32 must compute exactly what the lab computed before precision existed: no autocast region at all."""

    def refuse(*args, **kwargs):
        raise AssertionError("autocast entered under fp32")

    monkeypatch.setattr(torch, "autocast", refuse)
    run = train(tiny_config(epochs=1, mode_seeking=0.5, ema=0.9), progress=False)
    assert Pipeline.from_run(run).precision == "fp32"
    Pipeline.from_run(run)(["a red flower"], n=2)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_finite_in_fp32_weights_and_resumes_bit_exact(
    tiny_config, tmp_path, precision, monkeypatch
):
    settings = {"precision": precision, "mode_seeking": 0.5, "ema": 0.9, "sync_every": 2}
    seen = set()  # the dtypes the loss recipe's reductions get: D's logits and features, G's images
    for method in ("discriminator_loss", "generator_loss"):
        real = getattr(GanClsLoss, method)
        monkeypatch.setattr(
            GanClsLoss, method, lambda self, *args, real=real: seen.update(a.dtype for a in args) or real(self, *args)
        )
    straight = train(tiny_config(out_dir=str(tmp_path / "straight"), **settings), progress=False)
    assert seen == {torch.float32}, "the losses must be reduced in fp32"
    monkeypatch.undo()
    halves = tmp_path / "halves"
    train(tiny_config(out_dir=str(halves), epochs=1, **settings), progress=False)
    train(tiny_config(out_dir=str(halves), **settings), resume=halves, progress=False)
    assert _same(_weights(straight), _weights(halves)), "resume under mixed precision is not exact"

    metrics = read_metrics(straight)
    assert [m["epoch"] for m in metrics] == [1, 2] and all(math.isfinite(v) for m in metrics for v in m.values())
    state = load_checkpoint(straight)
    assert all(v.dtype in (torch.float32, torch.int64) for v in _weights(straight).values()), (
        "weights, EMA included, must stay fp32"
    )
    if precision == "fp16":  # one scaler per player, both in the checkpoint
        assert set(state["scalers"]) == {"d", "g"} and all(s["scale"] > 0 for s in state["scalers"].values())
    else:
        assert state["scalers"] == {"d": {}, "g": {}}

    fp32 = train(tiny_config(out_dir=str(tmp_path / "fp32"), mode_seeking=0.5, ema=0.9, sync_every=2), progress=False)
    assert not _same(_weights(straight), _weights(fp32)), "autocast changed nothing"
    own, plain = Pipeline.from_run(straight), Pipeline.from_run(straight, precision="fp32")
    assert (own.precision, plain.precision) == (precision, "fp32")
    a, b = own(["a red flower"], n=3, seed=1), plain(["a red flower"], n=3, seed=1)
    assert a.shape == b.shape == (3, 3, 64, 64) and a.dtype == b.dtype == torch.float32
    assert 0 < (a - b).abs().max() < 0.25, "rendering in the run's precision should differ from fp32 only by rounding"


def test_a_fp32_run_resumed_in_fp16_starts_scaling_afresh(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(out_dir=str(run), epochs=1), progress=False)
    train(tiny_config(out_dir=str(run), precision="fp16"), resume=run, progress=False)
    assert load_checkpoint(run)["scalers"]["g"]["scale"] > 0


def test_compile_failure_is_one_line_and_the_run_trains_exactly_uncompiled(tiny_config, tmp_path, monkeypatch, capsys):
    plain = train(tiny_config(out_dir=str(tmp_path / "plain"), epochs=1), progress=False)

    def broken_backend(graph, example_inputs):
        raise RuntimeError("forced failure for the test")

    monkeypatch.setattr(compile_trial, "BACKEND", broken_backend)
    capsys.readouterr()
    fallback = train(tiny_config(out_dir=str(tmp_path / "fallback"), epochs=1, compile=True), progress=False)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("compile:")]
    assert len(lines) == 1 and "forced failure for the test" in lines[0] and lines[0].endswith("training uncompiled"), (
        lines
    )
    # The trial step is undone: weights, batch-norm statistics and RNGs are as if it never ran.
    assert _same(_weights(plain), _weights(fallback))


def test_compile_runs_compiled_where_the_backend_works(tiny_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(compile_trial, "BACKEND", "eager")  # dynamo's tracing without inductor's code generation
    run = train(tiny_config(out_dir=str(tmp_path / "run"), epochs=1, compile=True), progress=False)
    assert "compile: G and D compiled (eager)" in capsys.readouterr().err
    assert all(math.isfinite(v) for v in read_metrics(run)[0].values())


def test_tensorboard_logs_every_term_per_sync_the_rates_the_samples_and_the_config(tiny_config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(tiny_config(log="tensorboard", sync_every=1, sample_every=1), progress=False)
    events = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0}).Reload()
    tags = events.Tags()
    history = read_metrics(run)
    terms = [k for k in history[0] if k not in ("epoch", "images_per_s")]
    assert {f"loss/{k}" for k in terms} | {"speed/images_per_s", "lr/generator", "lr/discriminator"} <= set(
        tags["scalars"]
    )
    steps = 3  # 24 captions in batches of 8, every step synced
    for key in terms:  # one point per step; each epoch's points average to metrics.jsonl's epoch mean
        points = events.Scalars(f"loss/{key}")
        assert [p.step for p in points] == list(range(1, 2 * steps + 1))
        for epoch, record in enumerate(history):
            mean = sum(p.value for p in points[epoch * steps : (epoch + 1) * steps]) / steps
            assert mean == pytest.approx(record[key], rel=1e-4, abs=1e-5), key
    assert all(p.value == pytest.approx(2e-4) for p in events.Scalars("lr/generator"))
    assert all(p.value > 0 for p in events.Scalars("speed/images_per_s"))
    grids = events.Images("samples")
    assert [g.step for g in grids] == [steps, 2 * steps] and grids[0].width > 6 * 64
    assert any(t.startswith("config") for t in tags["tensors"])  # the config as text


def test_tensorboard_curves_never_double_back_after_a_crash_and_resume(tiny_config, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_config(log="tensorboard", sync_every=1)
    calls, real_step = [0], train_module.train_step

    def crash_at_step_6(*args):  # epoch 2, step 3: steps 4 and 5 are logged, the checkpoint is epoch 1's
        calls[0] += 1
        if calls[0] == 6:
            raise RuntimeError("killed")
        return real_step(*args)

    monkeypatch.setattr(train_module, "train_step", crash_at_step_6)
    with pytest.raises(RuntimeError, match="killed"):
        train(config, progress=False)
    monkeypatch.setattr(train_module, "train_step", real_step)
    run = train(config, resume=tmp_path / "run", progress=False)
    events = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0}).Reload()
    assert [p.step for p in events.Scalars("loss/d_loss")] == [1, 2, 3, 4, 5, 6]


def test_without_tensorboard_one_line_says_how_to_install_and_the_run_goes_on(
    tiny_config, tmp_path, monkeypatch, capsys
):
    for module in ("tensorboard", "torch.utils.tensorboard", "torch.utils.tensorboard.summary"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    run = train(tiny_config(log="tensorboard", epochs=1), progress=False)
    err = capsys.readouterr().err
    assert err.count(INSTALL_HINT) == 1 and "pip install -e .[tensorboard]" in INSTALL_HINT
    assert read_metrics(run) and not (run / "tb").exists()
