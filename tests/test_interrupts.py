"""Interrupts and full disks, in real processes: Ctrl-C (once or twice) at random moments, kill -9, a disk
that fills up. Each leaves a complete checkpoint, the new one or the previous one, no temp file and no
traceback, and the resumed run ends with exactly the weights of a run that was never interrupted."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lab.checkpoint import load_checkpoint
from lab.files import TEMP_PATTERN, remove_orphan_temps
from tests.helpers import ROOT

EPOCHS = 6
TRIALS = 6


def train_args(run: Path, synthetic_root: Path, cache: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "lab.cli", "train", "--quiet", f"--data_dir={synthetic_root}", "--encoder=minilm",
        "--generator.width=8", "--discriminator.width=8", "--batch_size=4", f"--epochs={EPOCHS}", "--ema=0.9",
        "--split=all", f"--cache_dir={cache}", f"--out_dir={run}", "--threads=1", *extra,
    ]  # fmt: skip


def resume(run: Path) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "lab.cli", "train", "--quiet", "--resume", str(run)]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


def weights(run: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run)
    return {f"{part}.{k}": v for part in ("generator", "discriminator", "ema") for k, v in state[part].items()}


def temps(run: Path) -> list[str]:
    return [p.name for p in run.rglob("*") if TEMP_PATTERN.match(p.name)]


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def straight(tmp_path_factory, synthetic_root):
    """The weights of the run trained without interruption."""
    tmp = tmp_path_factory.mktemp("straight")
    done = subprocess.run(train_args(tmp / "run", synthetic_root, tmp / "cache"), cwd=ROOT, capture_output=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return weights(tmp / "run")


def test_ctrl_c_once_or_twice_at_random_moments_resumes_bit_exactly(straight, synthetic_root, tmp_path):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    for trial in range(TRIALS):
        run = tmp_path / f"trial{trial}"
        proc = subprocess.Popen(
            train_args(run, synthetic_root, tmp_path / "cache"), cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        wait_for(run / "checkpoint.pt", proc)  # past epoch 1: steps, saves and sample grids follow each other
        time.sleep(rng.uniform(0, 1.0))
        plan = [rng.uniform(0, 0.3) for _ in range(rng.choice([1, 2, 2, 3]))]
        for gap in plan:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            time.sleep(gap)
        _, err = proc.communicate(timeout=120)
        where = f"trial {trial} of seed {seed} (Ctrl-C gaps {plan}): exit {proc.returncode}\n{err[-1500:]}"
        assert proc.returncode in (0, 130) and "Traceback" not in err, where
        assert not temps(run), where
        if proc.returncode == 130:
            done = resume(run)
            assert done.returncode == 0 and "Traceback" not in done.stderr, where + done.stderr[-1500:]
        assert load_checkpoint(run)["epoch"] == EPOCHS, where
        now = weights(run)
        assert now.keys() == straight.keys()
        assert all(torch.equal(now[k], straight[k]) for k in now), f"{where}\nweights differ after resume"


def test_kill_9_mid_run_leaves_a_loadable_checkpoint_and_the_next_start_cleans_its_temp_files(
    straight, synthetic_root, tmp_path
):
    run = tmp_path / "killed"
    proc = subprocess.Popen(train_args(run, synthetic_root, tmp_path / "cache"), cwd=ROOT, stderr=subprocess.PIPE)
    wait_for(run / "checkpoint.pt", proc)
    time.sleep(random.uniform(0, 0.5))
    proc.kill()
    proc.communicate()
    orphan = run / f".checkpoint.{proc.pid}.tmp.pt"  # what a kill inside a write leaves
    orphan.write_bytes(b"half a checkpoint")
    done = resume(run)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-1500:]
    assert not orphan.exists() and not temps(run)
    now = weights(run)
    assert all(torch.equal(now[k], straight[k]) for k in now)


def test_orphan_temp_files_of_live_writers_are_kept(tmp_path):
    mine, dead = tmp_path / f".eval.{os.getpid()}.tmp.json", tmp_path / ".eval.999999999.tmp.json"
    for path in (mine, dead, tmp_path / "eval.json"):
        path.write_text("{}")
    assert remove_orphan_temps(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "eval.json"])


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MB tmpfs (mounting needs root: skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()[:100]}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(small_disk, synthetic_root, tmp_path):
    run = small_disk / "run"
    proc = subprocess.Popen(
        train_args(run, synthetic_root, tmp_path / "cache", "--epochs=1000"),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(run / "checkpoint.pt", proc)
    with (small_disk / "filler").open("wb") as f:  # fill what is left
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 2 and "Traceback" not in err, err[-2000:]
    assert lines[-1].startswith("lab train: error: cannot write ") and "No space left on device" in lines[-1]
    assert str(run) in lines[-1] and "free some space on that disk" in lines[-1], lines[-1]
    saved = load_checkpoint(run)  # the previous checkpoint, whole
    assert saved["epoch"] >= 1 and not temps(run)
    (small_disk / "filler").unlink()
    shutil.copytree(run, tmp_path / "moved")  # space again (and a copy off the small disk): training goes on
    done = subprocess.run(
        [sys.executable, "-m", "lab.cli", "train", "--quiet", "--resume", str(tmp_path / "moved"), f"--epochs={saved['epoch'] + 1}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-1500:]
