"""Two CPU processes under torchrun (gloo backend): the same `lab train` a GPU cluster would run."""

import subprocess
import sys

from lab.checkpoint import load_checkpoint, load_run, read_metrics
from tests.helpers import ROOT


def test_torchrun_two_processes_on_gloo(tmp_path, synthetic_root):
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29533",
        "-m",
        "lab.cli",
        "train",
        "--quiet",
        f"--data_dir={synthetic_root}",
        "--encoder=minilm",
        "--generator.width=8",
        "--discriminator.width=8",
        "--batch_size=4",
        "--epochs=2",
        "--split=all",
        f"--cache_dir={tmp_path / 'cache'}",
        f"--out_dir={run}",
        "--threads=1",
        "--device=cpu",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    state = load_checkpoint(run)
    assert state["world"] == 2 and len(state["rng"]) == 2
    assert not state["rng"][0]["data"].equal(state["rng"][1]["data"]), "ranks must draw different noise"
    # each rank trains on half of the 24 captions: 3 batches of 4 per epoch
    assert [m["epoch"] for m in read_metrics(run)] == [1, 2]
    assert load_run(run).epoch == 2
    assert out.stdout.count("run saved in") == 1  # only rank 0 reports and writes
