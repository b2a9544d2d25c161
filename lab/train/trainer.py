"""`lab train`: the epoch loop, single process or data-parallel under `torchrun`.

The `Trainer` builds the parts, the optimisers and the data, then loops: each batch is one
`train_step` (step.py). What else a step needs is in small units beside it: the EMA of G (ema.py),
the resume state and the RNGs (state.py), the loss meter (meter.py), data-parallel set-up
(distributed.py), the compile trial (compile.py), and what the run writes (run_log.py).

State that matters for an exact resume is all in the checkpoint: weights, optimisers, fp16's loss
scalers, the EMA copy of G, the RNGs that draw noise, wrong images and augmentations, and the
position inside the epoch. Ctrl-C saves it; `--resume RUN_DIR` carries on.

On a GPU: `precision` runs G and D under bf16/fp16 autocast (weights, loss reductions and the EMA
stay fp32), Adam is the fused CUDA kernel, `compile` tries `torch.compile`, and `log = "tensorboard"`
shows the run live.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from lab import config as config_lib
from lab.checkpoint import (
    CHECKPOINT,
    check_compatible,
    load_checkpoint,
    prepare_run_dir,
    read_run_config,
    record_resume,
    save_checkpoint,
    save_run_config,
    trust_flag,
    trusted_run_config,
)
from lab.config import ExperimentConfig
from lab.data.captions import detect_layout
from lab.data.dataset import FlowersDataset, build_dataset, ensure_data, photo_augmentation
from lab.device import MixedPrecision, resolve_precision, to_device_async
from lab.errors import LabError
from lab.files import remove_orphan_temps
from lab.parts.build import build_parts, check_names, load_encoder
from lab.runlock import run_lock
from lab.sample.pipeline import Pipeline
from lab.tblog import TensorBoardLog
from lab.train import compile as compile_trial
from lab.train.augment import AugmentedDiscriminator
from lab.train.distributed import setup_distributed
from lab.train.ema import EMA
from lab.train.interrupts import sigint_held, stop_between_steps
from lab.train.meter import LossMeter
from lab.train.mode_seeking import ModeSeekingGenerator
from lab.train.run_log import live_losses, sample_captions, save_samples, write_metrics
from lab.train.state import RunRandomness, TrainState, learner_state, load_learner_state, set_learning_rates
from lab.train.step import train_step

OPTIONAL_STATE = ("scalers",)  # checkpoint keys that came after runs were already saved: absent = their defaults
ADAM_ON_CUDA = {"fused": True}  # one kernel for all of a model's weights (benchmarks/gpu.py times it against foreach)


class Trainer:
    """Owns the parts, optimisers, data and run directory of one training run, and runs its epochs."""

    def __init__(self, config: ExperimentConfig, run_dir: Path, resume: bool, progress: bool = True):
        self.config, self.run_dir = config, run_dir
        self.dist = setup_distributed(config.device)
        self.progress = progress and self.dist.main
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)  # model initialisation is the same on every rank
        if self.dist.main:  # a wrong data_dir fails before the encoder loads; rank 0 draws the default set
            detect_layout(ensure_data(config, self.progress))
        check_names(config)
        self.encoder = load_encoder(config, device=str(self.dist.device))
        # Models before data: a setting the parts reject fails before any image is decoded.
        self.generator, self.discriminator, self.recipe = build_parts(config, self.encoder.dim)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.generator.to(self.dist.device, memory_format=self.memory_format)
        self.discriminator.to(self.dist.device, memory_format=self.memory_format)
        self.ema = EMA(self.generator, config.ema, seed=config.seed) if config.ema else None
        self.precision = resolve_precision(config.precision, self.dist.device)
        if self.precision == "fp16" and self.dist.world > 1:  # a rank whose scaler skips a step would stall the rest
            raise LabError("precision = 'fp16' is not supported under torchrun; use bf16 (or fp32)")
        if self.precision != "fp32" and self.dist.main:
            print(
                f"precision: G and D under {self.precision} autocast; weights, losses and the EMA in fp32",
                file=sys.stderr,
            )
        self.random = RunRandomness(config.seed * 1000 + self.dist.rank, self.dist.device)
        if config.augment.policy:
            augment_seed = config.seed * 1000 + self.dist.rank + 1
            self.random.augment = torch.Generator(device=self.dist.device).manual_seed(augment_seed)
        self.painter, self.judge = self._players(self.generator, self.discriminator)
        betas = (config.beta1, config.beta2)
        fused = ADAM_ON_CUDA if self.dist.device.type == "cuda" else {}  # on the CPU, Adam stays as it was
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas, **fused)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_discriminator, betas=betas, **fused)
        self.optimizers, self.rates = (self.opt_g, self.opt_d), (config.lr, config.lr_discriminator)
        self.scalers = tuple(
            torch.amp.GradScaler(self.dist.device.type, enabled=self.precision == "fp16") for _ in "dg"
        )
        self.dist.average_gradients_before_step(self.opt_g, self.generator)
        self.dist.average_gradients_before_step(self.opt_d, self.discriminator)

        self.dataset = self._load_data()
        self.dataset.generator = self.random.data
        self.state = TrainState(rng=self.random.states())
        self.meter = LossMeter()
        self.stop_requested = False
        self.mid_step = False  # True from the start of a step until its counters and RNG snapshot are updated
        self.time_spent = 0.0  # fraction of `time_limit` spent, as the ranks last agreed (`_time_is_up`)
        self.steps_per_epoch = len(self.batches())
        self.sample_texts = sample_captions(
            config.sample_captions, self.dataset.texts, self.dataset.caption_image.tolist()
        )
        if resume:
            self._restore(self.encoder.dim)
        elif self.dist.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_run_config(run_dir, config, self.encoder.dim)
        if config.compile:
            self._compile()
        on = config.log == "tensorboard" and self.dist.main
        self.tb = TensorBoardLog.open(run_dir, config.to_dict(), self.global_step) if on else None

    def _load_data(self) -> FlowersDataset:
        dataset, captions = self.dist.main_first(
            lambda main: build_dataset(self.config, self.encoder, main and self.progress)
        )
        if self.dist.main and captions.skipped:
            print("data: " + ", ".join(f"{n} {why}" for why, n in captions.skipped.items()), file=sys.stderr)
        if self.dist.main and photo_augmentation(self.config):
            print(
                f"data: random crops (from {self.config.crop_scale:g}x) and flips on every training image",
                file=sys.stderr,
            )
        if len(dataset.images) < 2:
            raise LabError("training needs at least 2 images")
        dataset.to(self.dist.device)
        return dataset

    def _players(self, generator: torch.nn.Module, discriminator: torch.nn.Module) -> tuple[torch.nn.Module, ...]:
        """What the step calls: G (under autocast when `precision` asks, with the mode-seeking term when it is on)
        and D (under autocast, behind DiffAugment when it is on). The plain `self.generator` and
        `self.discriminator` keep the weights, the state dicts and the sampling."""
        if self.precision != "fp32":
            generator = MixedPrecision(generator, self.precision, self.dist.device)
            discriminator = MixedPrecision(discriminator, self.precision, self.dist.device)
        if self.config.mode_seeking:
            generator = ModeSeekingGenerator(generator, self.config.mode_seeking)
        if self.config.augment.policy:
            discriminator = AugmentedDiscriminator(
                discriminator, self.config.augment.policy, generator=self.random.augment
            )
        return generator, discriminator

    def _compile(self) -> None:
        def trial(players, idle_g, idle_d):
            indices = self.batches()[0]
            train_step(*players, self.recipe, idle_g, idle_d, self._batch(indices), self._noise(len(indices)))

        rng = (self.random.states, self.random.set_states)
        compiled = compile_trial.try_compile(
            self.generator, self.discriminator, self._players, trial, rng, self.dist.main
        )
        if compiled is not None:
            self.painter, self.judge = compiled

    @property
    def global_step(self) -> int:
        """Steps trained since the run began: the x axis of the live curves."""
        return self.state.epoch * self.steps_per_epoch + self.state.step

    @property
    def inference_generator(self) -> torch.nn.Module:
        """The weights samples, `generator.safetensors` and everything downstream use: the EMA copy when kept."""
        return self.ema.model if self.ema is not None else self.generator

    # --- checkpointing -------------------------------------------------
    def _checkpoint(self) -> dict:
        """Everything `--resume` needs (a collective under DDP: every rank's RNGs are gathered)."""
        return {
            **learner_state(self.generator, self.discriminator, self.ema, self.optimizers, self.scalers),
            **self.state.to_checkpoint(self.dist.gather(self.state.rng)),
            "world": self.dist.world,
            "image_size": self.config.image_size,
        }

    def save(self) -> None:
        """Write the checkpoint (and generator.safetensors); Ctrl-C waits until both are complete."""
        with sigint_held():
            self._sync()  # the checkpoint's sums must cover every step it counts (and a NaN must not be saved)
            if self.ema is not None and self.dist.main:  # only rank 0 writes and renders the average
                self.ema.recalibrate(self.dataset.embeddings, self.config.batch_size, self.dist.device)
            state = self._checkpoint()
            if self.dist.main:
                save_checkpoint(self.run_dir, state, self.inference_generator)

    def _restore(self, text_dim: int) -> None:
        saved = load_checkpoint(self.run_dir)
        missing = [k for k in self._checkpoint() if k not in saved and k not in OPTIONAL_STATE]
        if missing:
            raise LabError(
                f"{self.run_dir / 'checkpoint.pt'} lacks {', '.join(missing)}: written by another version of the lab, "
                "or not by `lab train`"
            )
        _, saved_dim = read_run_config(self.run_dir)
        check_compatible(self.run_dir, saved_dim, text_dim, saved["image_size"], self.config.image_size)
        load_learner_state(saved, self.generator, self.discriminator, self.ema, self.optimizers, self.scalers)
        set_learning_rates(self.optimizers, self.rates)  # a --lr given on resume applies from here on
        self.state = TrainState.from_checkpoint(saved, self.dist.rank)
        if self.dist.main:
            write_metrics(self.run_dir, self.state.history)
        if saved["world"] == self.dist.world:
            self.random.set_states(self.state.rng)
        else:  # another process count shards the epoch differently: redo it from its start
            self.state.rng = self.random.states()
            if self.state.step:
                if self.dist.main:
                    restart = f"epoch {self.state.epoch + 1} restarts"
                    print(
                        f"resuming on {self.dist.world} process(es) instead of {saved['world']}: {restart}",
                        file=sys.stderr,
                    )
                self.state.step, self.state.sums = 0, {}

    # --- the loop ------------------------------------------------------
    def batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch: the same on every run for a given seed and epoch."""
        sampler = DistributedSampler(self.dataset, self.dist.world, self.dist.rank, shuffle=True, seed=self.config.seed)
        sampler.set_epoch(self.state.epoch)
        order, size = list(sampler), self.config.batch_size
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        return [b for b in batches if len(b) > 1]  # batch norm cannot train on a single image

    def _batch(self, indices: list[int]) -> dict:
        """The batch's images, wrong images and embeddings, drawn with the run's RNG, on the device."""

        def move(v):
            if not torch.is_tensor(v):
                return v
            v = to_device_async(v, self.dist.device)  # a no-op for what the dataset already holds there
            return v.contiguous(memory_format=self.memory_format) if v.dim() == 4 else v

        return {k: move(v) for k, v in self.dataset.__getitems__(indices).items()}

    def _noise(self, n: int) -> torch.Tensor:
        noise = torch.randn(n, self.generator.noise_dim, generator=self.random.data)  # the run's checkpointed RNG
        return to_device_async(noise, self.dist.device)

    def train_batch(self, indices: list[int]) -> dict[str, torch.Tensor | float]:
        """Fetch one batch (with its wrong images and noise from the run's RNG) and train on it."""
        batch = self._batch(indices)
        noise = self._noise(len(indices))
        terms = train_step(self.painter, self.judge, self.recipe, self.opt_g, self.opt_d, batch, noise, self.scalers)
        if self.ema is not None:
            self.ema.update(self.generator)
        return terms

    def run(self) -> None:
        """Train until `epochs`, or until `time_limit` minutes of training steps have passed (the epoch then ends
        early). Time spent is checkpointed, so a resumed run gets only what is left of its budget."""
        state = self.state
        if state.epoch >= self.config.epochs:
            raise LabError(
                f"{self.run_dir} has trained {state.epoch} epoch(s) already; give a larger --epochs to go on"
            )
        if self._time_is_up():
            raise LabError(
                f"the time limit of {self.config.time_limit:g} min is already spent ({state.train_seconds / 60:.2f} min "
                "trained); give a larger --time_limit to go on"
            )
        cut_short = False
        while state.epoch < self.config.epochs and not self._time_is_up():
            batches = self.batches()
            desc = f"epoch {state.epoch + 1}/{self.config.epochs}"
            bar = tqdm(total=len(batches), initial=state.step, desc=desc, disable=not self.progress, unit="batch")
            start, seen = time.perf_counter(), 0
            self.meter.restart_window()
            while state.step < len(batches):
                step_start = time.perf_counter()
                self.mid_step = True
                self._decay_learning_rates(len(batches))
                self.meter.add(self.train_batch(batches[state.step]), len(batches[state.step]))
                seen += len(batches[state.step])
                state.step += 1
                synced = len(self.meter.pending) >= self.config.sync_every or state.step == len(batches)
                if synced:
                    last = self._sync()  # timed with the step: the wait for the GPU is training time
                    bar.set_postfix(d=f"{last['d_loss']:.3f}", g=f"{last['g_loss']:.3f}", refresh=False)
                state.train_seconds += time.perf_counter() - step_start
                state.rng = self.random.states()
                self.mid_step = False
                bar.update(1)
                if self.stop_requested:
                    raise KeyboardInterrupt
                # Under DDP, agreeing to stop is a collective (a wait on every rank): only where the loop syncs anyway.
                if (synced or self.dist.world == 1) and self._time_is_up():
                    break
            bar.close()
            cut_short = state.step < len(batches)
            self._end_epoch(state.step, seen * self.dist.world / max(time.perf_counter() - start, 1e-9))
        if self._time_is_up() and self.dist.main:
            cut = " (the last one cut short)" if cut_short else ""
            print(
                f"time limit of {self.config.time_limit:g} min reached after {state.epoch} epoch(s){cut}",
                file=sys.stderr,
            )

    def _sync(self) -> dict[str, float]:
        """The pending steps' terms into the epoch's sums (see `LossMeter`); returns the last step's terms."""
        last, means = self.meter.sync(self.state.sums, self.state.step, self._where_it_stopped)
        if self.tb is not None and means:  # {} when no step was pending
            lrs = self.opt_g.param_groups[0]["lr"], self.opt_d.param_groups[0]["lr"]
            live_losses(self.tb, means, self.meter.images_per_second(), lrs, self.global_step)
        return last

    def _where_it_stopped(self, step: int) -> str:
        """The end of the line a loss that is not finite stops the run with."""
        if (self.run_dir / CHECKPOINT).exists():
            kept = f"the last good checkpoint is kept in {self.run_dir}"
        else:
            kept = "no checkpoint had been saved yet"
        return f"epoch {self.state.epoch + 1} step {step}; training stopped, {kept}; try a lower --lr"

    def _time_is_up(self) -> bool:
        """Whether `time_limit` is spent; rank 0's clock decides, so DDP ranks stop at the same step."""
        if not self.config.time_limit:
            return False
        self.time_spent = self.dist.from_main(self.state.train_seconds / (self.config.time_limit * 60))
        return self.time_spent >= 1

    def _decay_learning_rates(self, steps_per_epoch: int) -> None:
        """With `lr_decay`, both learning rates fall linearly to 0 as the budget is spent: "budgeted training"
        (Li et al. 2020), where for supervised nets a schedule that ends with the budget beats a constant rate
        cut off by it. A GAN's game may still be far from settled when the budget ends: on the 5-minute main
        job it measured worse (README), so it is off by default.
        The budget is `epochs` or `time_limit`, whichever is further along; time as the ranks last agreed on it,
        so every rank steps with the same rate. Both are checkpointed, so a resumed run picks up the schedule."""
        if not self.config.lr_decay:
            return
        spent = max((self.state.epoch + self.state.step / steps_per_epoch) / self.config.epochs, self.time_spent)
        set_learning_rates(self.optimizers, tuple(lr * max(1 - spent, 0.0) for lr in self.rates))

    def request_stop(self) -> bool:
        """Ask the loop to stop after the current step; returns whether a stop had already been asked for."""
        already, self.stop_requested = self.stop_requested, True
        return already

    def _end_epoch(self, steps: int, images_per_s: float) -> None:
        state = self.state
        with sigint_held():  # the epoch's sums, its bookkeeping and its checkpoint land together
            self._sync()  # what a time limit cut short of the last sync
            means = self.dist.mean({k: v / max(steps, 1) for k, v in state.sums.items()})  # logged losses, all ranks
            state.epoch, state.step, state.sums = state.epoch + 1, 0, {}
            row = {k: round(v, 6) for k, v in means.items()}
            state.history.append({"epoch": state.epoch, **row, "images_per_s": round(images_per_s, 1)})
            self.save()  # metrics.jsonl is written from the checkpoint's history: a kill in between never duplicates
        last = state.epoch == self.config.epochs or self._time_is_up()
        if self.dist.main:
            write_metrics(self.run_dir, state.history)
            if state.epoch % self.config.sample_every == 0 or last:
                self.save_samples()

    def save_samples(self) -> Path:
        pipeline = Pipeline(self.inference_generator, self.encoder, precision=self.precision)
        path, grid = save_samples(self.run_dir, pipeline, self.sample_texts, self.config.seed, self.state.epoch)
        if self.tb is not None:
            self.tb.image("samples", grid, self.global_step)
        return path


def train(
    config: ExperimentConfig, resume: str | Path | None = None, progress: bool = True, force: bool = False
) -> Path:
    """Train (or resume) a run; returns its directory. Ctrl-C saves a checkpoint to resume from.
    `force` trains a new run into a folder that holds files (see `prepare_run_dir`)."""
    run_dir = Path(resume) if resume else Path(config.out_dir)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    # One process per run directory; under torchrun, rank 0 holds the lock for the job.
    with run_lock(run_dir) if rank0 else nullcontext():
        if rank0:
            for folder in (run_dir, run_dir / "samples"):  # what a kill -9 mid-write left (we hold the lock)
                remove_orphan_temps(folder)
        changed = prepare_run_dir(run_dir, config, bool(resume), force) if rank0 else {}
        trainer = Trainer(config, run_dir, resume=bool(resume), progress=progress)
        record_resume(run_dir, config, changed, trainer.state.epoch, trainer.state.step)
        try:
            with stop_between_steps(trainer.request_stop):
                trainer.run()
            trainer.dist.barrier()  # no rank tears the group down while rank 0 still writes samples
        except KeyboardInterrupt:
            with sigint_held():  # a further Ctrl-C now waits until the checkpoint is whole
                if not trainer.mid_step:  # mid-step, the weights are half-way through it: keep the previous checkpoint
                    trainer.save()
                resumable = (run_dir / CHECKPOINT).exists()
                if trainer.mid_step:
                    kept = "the last checkpoint is kept" if resumable else "no checkpoint had been saved yet"
                    said = f"stopped in the middle of a step; {kept}"
                else:
                    said = f"interrupted at epoch {trainer.state.epoch + 1} step {trainer.state.step}; saved"
                if trainer.dist.main:
                    then = f"Continue with: lab train --resume {run_dir}{trust_flag(config)}"
                    print(
                        f"\n{said}. {then if resumable else 'Nothing to resume: start the run again.'}", file=sys.stderr
                    )
            raise
        finally:
            if trainer.tb is not None:
                trainer.tb.close()
            trainer.dist.close()
    return run_dir


def main(args) -> int:
    if args.resume:
        saved, _ = trusted_run_config(args.resume, args.trust_code)
        config = config_lib.apply(saved, config_lib.parse_overrides(args.overrides))
    else:
        config = config_lib.load(args.config, args.overrides)
    run_dir = train(config, args.resume, progress=not args.quiet, force=args.force)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run saved in {run_dir} (samples in {run_dir / 'samples'}, losses in {run_dir / 'losses.png'})")
    return 0
