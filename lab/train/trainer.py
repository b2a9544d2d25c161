"""`lab train`: the training loop, single process or data-parallel under `torchrun`.

Readable first: one `train_step` does a discriminator step then a generator
step, and the loss recipe decides which pairs D judges. Against the original
tutorial the lab fixes: wrong images really are fed to D, G and D share one
`image_size`, and the feature-matching target comes from the same D the G
step is judged by.

State that matters for an exact resume is all in the checkpoint: weights,
optimisers, fp16's loss scalers, the EMA copy of G, the RNGs that draw noise,
wrong images and augmentations, and the position inside the epoch. Ctrl-C
saves it; `--resume RUN_DIR` carries on.

On a GPU: `precision` runs G and D under bf16/fp16 autocast (weights, loss
reductions and the EMA stay fp32), Adam is the fused CUDA kernel, `compile`
tries `torch.compile`, and `log = "tensorboard"` shows the run live.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from lab import config as config_lib
from lab.checkpoint import (
    METRICS,
    check_compatible,
    load_checkpoint,
    load_state_dict,
    prepare_run_dir,
    read_run_config,
    record_resume,
    save_checkpoint,
    save_run_config,
    trusted_run_config,
)
from lab.config import ExperimentConfig
from lab.data.captions import detect_layout
from lab.data.dataset import build_dataset, ensure_data, photo_augmentation
from lab.device import MixedPrecision, resolve_device, resolve_precision, to_device_async
from lab.errors import LabError
from lab.files import atomic_write
from lab.parts.build import build_parts, load_encoder
from lab.parts.interfaces import LossRecipe
from lab.plots import caption_grid, save_loss_plot
from lab.runlock import run_lock
from lab.sample.pipeline import Pipeline
from lab.tblog import TensorBoardLog
from lab.train.augment import AugmentedDiscriminator
from lab.train.mode_seeking import ModeSeekingGenerator

SAMPLE_CAPTIONS, SAMPLES_PER_CAPTION = 6, 6
EMA_CALIBRATION_BATCHES = 16  # batches the EMA's batch-norm statistics are measured on at every save
COMPILE_BACKEND = "inductor"  # torch.compile's backend for `compile = true`
OPTIONAL_STATE = ("scalers",)  # checkpoint keys that came after runs were already saved: absent = their defaults
ADAM_ON_CUDA = {"fused": True}  # one kernel for all of a model's weights (benchmarks/gpu.py times it against foreach)
NO_SCALING = torch.amp.GradScaler(
    "cpu", enabled=False
)  # bf16 and fp32 need no loss scaling: a disabled scaler is a plain backward and step


def backward_and_step(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, **backward
) -> None:
    """`loss.backward(); optimizer.step()`, through fp16's loss scaler when it is on.

    fp16 gradients underflow to 0 below ~6e-8: the scaler multiplies the loss (so every gradient) by a large
    factor, divides it out before the step, skips steps whose gradients overflowed and adapts the factor.
    Disabled (bf16, fp32) it is exactly the plain backward and step."""
    scaler.scale(loss).backward(**backward)
    scaler.step(optimizer)
    scaler.update()


def train_step(
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    recipe: LossRecipe,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    batch: dict,
    noise: torch.Tensor,
    scalers: tuple[torch.amp.GradScaler, torch.amp.GradScaler] = (NO_SCALING, NO_SCALING),
) -> dict[str, torch.Tensor | float]:
    """One D update then one G update; returns the loss terms, detached: 0-d tensors on the device (floats where
    the recipe gave floats), so the step never makes the host wait for the GPU (see `Trainer._sync`).
    `scalers` are D's and G's fp16 loss scalers (one per player: each loss has its own range).

    The recipe runs D: by default on real, wrong and fake pairs *separately*,
    so with BatchNorm each group is normalised by its own statistics, the
    same way the G step sees the fakes. G's own extra losses (e.g. the KL
    term of conditioning augmentation) are added to its loss.
    """
    real, wrong, emb = batch["image"], batch["wrong_image"], batch["embedding"]
    fake = generator(noise, emb)
    extra = dict(getattr(generator, "extra_losses", {}))  # taken now: they belong to this forward pass

    d_out = recipe.discriminator_step(discriminator, real, wrong, fake.detach(), emb)
    opt_d.zero_grad(set_to_none=True)
    backward_and_step(d_out.total, opt_d, scalers[0])

    # G: judged by the updated D. Gradients are computed for G's weights only (`inputs=`): D's
    # would be thrown away, and skipping them saves about a third of this backward pass.
    g_out = recipe.generator_step(discriminator, fake, real, emb)
    g_total = g_out.total + sum(extra.values())
    opt_g.zero_grad(set_to_none=True)
    backward_and_step(g_total, opt_g, scalers[1], inputs=[p for p in generator.parameters() if p.requires_grad])
    terms = {"d_loss": d_out.total, "g_loss": g_total, **d_out.terms, **g_out.terms, **extra}
    return {
        k: v.detach() if torch.is_tensor(v) else v for k, v in terms.items()
    }  # the trainer keeps them for a while: no graphs


@dataclass
class Distributed:
    """Where this process sits in a `torchrun` job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Distributed:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device)
    torch.backends.cudnn.benchmark = True  # fixed shapes every step: let cuDNN pick its fastest kernels
    if world == 1:
        return Distributed(device=torch.device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    on_gpu = device.startswith("cuda")
    if on_gpu:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if on_gpu else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local_rank}" if on_gpu else "cpu"))


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Mean of every gradient over the ranks (what DDP does), so all ranks take the same optimiser step.

    Done as an optimiser pre-step hook instead of wrapping the models in DDP,
    so `train_step` and the loss recipes see plain modules, and the G step can
    run D without DDP waiting for D gradients that are never produced."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


class Trainer:
    """Owns models, optimisers, data and the run directory for one training run."""

    def __init__(self, config: ExperimentConfig, run_dir: Path, resume: bool, progress: bool = True):
        self.config, self.run_dir = config, run_dir
        self.dist = setup_distributed(config.device)
        self.progress = progress and self.dist.main
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)  # model initialisation is the same on every rank
        if self.dist.main:  # a wrong data_dir fails before the encoder loads; rank 0 draws the default set
            detect_layout(ensure_data(config, self.progress))
        self.encoder = load_encoder(config, device=str(self.dist.device))
        # Models before data: a setting the parts reject fails before any image is decoded.
        self.generator, self.discriminator, self.recipe = build_parts(config, self.encoder.dim)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.generator.to(self.dist.device, memory_format=self.memory_format)
        self.discriminator.to(self.dist.device, memory_format=self.memory_format)
        self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False) if config.ema else None
        self.precision = resolve_precision(config.precision, self.dist.device)
        if (
            self.precision == "fp16" and self.dist.world > 1
        ):  # a rank whose scaler skips a step would leave the others waiting in the gradient all-reduce
            raise LabError("precision = 'fp16' is not supported under torchrun; use bf16 (or fp32)")
        if self.precision != "fp32" and self.dist.main:
            print(
                f"precision: G and D under {self.precision} autocast; weights, losses and the EMA in fp32",
                file=sys.stderr,
            )
        self.augment_seed = config.seed * 1000 + self.dist.rank + 1
        self.painter, self.judge = self._players(self.generator, self.discriminator)
        betas = (config.beta1, config.beta2)
        fused = ADAM_ON_CUDA if self.dist.device.type == "cuda" else {}  # on the CPU, Adam stays as it was
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas, **fused)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_discriminator, betas=betas, **fused)
        self.scalers = tuple(
            torch.amp.GradScaler(self.dist.device.type, enabled=self.precision == "fp16") for _ in "dg"
        )
        if self.dist.world > 1:
            for opt, module in ((self.opt_g, self.generator), (self.opt_d, self.discriminator)):
                params = list(module.parameters())
                opt.register_step_pre_hook(lambda *_, params=params: average_gradients(params))

        if self.dist.main:
            self.dataset, captions = build_dataset(config, self.encoder, self.progress)
            if captions.skipped:
                print("data: " + ", ".join(f"{n} {why}" for why, n in captions.skipped.items()), file=sys.stderr)
            if photo_augmentation(config):
                print(
                    f"data: random crops (from {config.crop_scale:g}x) and flips on every training image",
                    file=sys.stderr,
                )
        self._barrier()  # rank 0 filled the caches; the others read them
        if not self.dist.main:
            self.dataset, _ = build_dataset(config, self.encoder, progress=False)
        if len(self.dataset.images) < 2:
            raise LabError("training needs at least 2 images")
        self.dataset.to(self.dist.device)
        self.rng = torch.Generator().manual_seed(config.seed * 1000 + self.dist.rank)
        self.dataset.generator = self.rng
        self.rng_snapshot = self._rng_states()  # the RNGs as they were after the last completed step
        self.stop_requested = False
        self.epoch, self.step, self.sums, self.history, self.train_seconds, self.ema_updates = 0, 0, {}, [], 0.0, 0
        self.time_spent = 0.0  # fraction of `time_limit` spent, as the ranks last agreed (`_time_is_up`)
        self.pending: list[
            dict[str, torch.Tensor | float]
        ] = []  # terms of the steps since the last sync, not yet in `sums`
        self.window = [
            0,
            time.perf_counter(),
        ]  # images trained since the last sync, and when it was (for live images/s)
        self.steps_per_epoch = len(self.batches())
        self.sample_texts = self._sample_captions()
        if resume:
            self._restore(self.encoder.dim)
        elif self.dist.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_run_config(run_dir, config, self.encoder.dim)
        if config.compile:
            self._compile()
        self.tb = (
            TensorBoardLog.open(run_dir, config.to_dict(), self.global_step)
            if config.log == "tensorboard" and self.dist.main
            else None
        )

    def _players(
        self, generator: torch.nn.Module, discriminator: torch.nn.Module
    ) -> tuple[torch.nn.Module, torch.nn.Module]:
        """What the step calls: G (under autocast when `precision` asks, with the mode-seeking term when it is on)
        and D (under autocast, behind DiffAugment when it is on). The plain `self.generator` and
        `self.discriminator` keep the weights, the state dicts and the sampling."""
        if self.precision != "fp32":
            generator = MixedPrecision(generator, self.precision, self.dist.device)
            discriminator = MixedPrecision(discriminator, self.precision, self.dist.device)
        if self.config.mode_seeking:
            generator = ModeSeekingGenerator(generator, self.config.mode_seeking)
        if self.config.augment.policy:
            discriminator = AugmentedDiscriminator(discriminator, self.config.augment.policy, seed=self.augment_seed)
        return generator, discriminator

    def _compile(self) -> None:
        """`compile = true`: G and D through `torch.compile`, tried on one real step before training.

        Compilation happens on first use, and inductor does not compile everything (on a CPU it fails on the
        main job's backward): a failure mid-run would lose the run. So one step runs compiled first, with
        optimisers that change nothing (SGD at lr 0); the weights, batch-norm statistics and RNGs are then put
        back, so the run trains exactly the steps it would have. Where it fails: one line, and the run goes on
        uncompiled."""
        augment = self.judge.generator.get_state() if isinstance(self.judge, AugmentedDiscriminator) else None
        plain = self.painter, self.judge
        self.painter, self.judge = self._players(
            *(torch.compile(m, backend=COMPILE_BACKEND) for m in (self.generator, self.discriminator))
        )
        if augment is not None:  # the compiled judge is a new DiffAugment: it carries on the plain one's draws
            self.judge.generator.set_state(augment)
        saved = copy.deepcopy((self.generator.state_dict(), self.discriminator.state_dict()))
        rngs = self._rng_states()
        idle_g, idle_d = (torch.optim.SGD(m.parameters(), lr=0.0) for m in (self.generator, self.discriminator))
        try:
            indices = self.batches()[0]
            train_step(
                self.painter, self.judge, self.recipe, idle_g, idle_d, self._batch(indices), self._noise(len(indices))
            )
        except Exception as e:  # any backend's failure: the run must not depend on a compiler
            self.painter, self.judge = plain
            while (
                inner := getattr(e, "inner_exception", None) or e.__cause__
            ) is not None:  # dynamo wraps the backend's own error
                e = inner
            if self.dist.main:
                print(
                    f"compile: torch.compile failed ({type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]}); training uncompiled",
                    file=sys.stderr,
                )
        else:
            if self.dist.main:
                print(
                    f"compile: G and D compiled ({COMPILE_BACKEND if isinstance(COMPILE_BACKEND, str) else 'custom backend'})",
                    file=sys.stderr,
                )
        finally:
            self.generator.load_state_dict(saved[0])
            self.discriminator.load_state_dict(saved[1])
            for module in (self.generator, self.discriminator):
                module.zero_grad(set_to_none=True)
            self._set_rng_states(rngs)

    @property
    def global_step(self) -> int:
        """Steps trained since the run began: the x axis of the live curves."""
        return self.epoch * self.steps_per_epoch + self.step

    def _barrier(self) -> None:
        if self.dist.world > 1:
            dist.barrier()

    def _sample_captions(self) -> list[str]:
        if self.config.sample_captions:
            return [c.strip() for c in self.config.sample_captions.split("|") if c.strip()][:SAMPLE_CAPTIONS]
        first_of_each_image = {}  # one caption from each of the first images, so rows show different flowers
        for text, image in zip(self.dataset.texts, self.dataset.caption_image.tolist()):
            first_of_each_image.setdefault(image, text)
        return list(dict.fromkeys(first_of_each_image.values()))[:SAMPLE_CAPTIONS]

    @property
    def inference_generator(self) -> torch.nn.Module:
        """The weights samples, `generator.safetensors` and everything downstream use: the EMA copy when kept."""
        return self.ema if self.ema is not None else self.generator

    @torch.no_grad()
    def update_ema(self) -> None:
        """Average G's weights over steps. The decay warms up ((1+n)/(10+n) until it reaches `ema`), so a short
        run's average is not dominated by the random weights it started from."""
        self.ema_updates += 1
        decay = min(self.config.ema, (1 + self.ema_updates) / (10 + self.ema_updates))
        for averaged, live in zip(self.ema.parameters(), self.generator.parameters()):
            averaged.lerp_(live, 1 - decay)

    @torch.no_grad()
    def recalibrate_ema(self) -> None:
        """Batch-norm statistics measured on the averaged weights (as SWA does), before anything renders with them.

        The live G's running means and variances belong to the live weights; the average's activations
        differ, and borrowing them skews every layer of the average in eval mode. Noise and captions come
        from their own RNG, seeded by the step, so training draws stay as they were and a resumed run
        recalibrates exactly as an uninterrupted one."""
        norms = [m for m in self.ema.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        rng = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.ema_updates)
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches below
        self.ema.train()
        with torch.random.fork_rng(
            devices=[self.dist.device] if self.dist.device.type == "cuda" else []
        ):  # G may sample in train mode
            for _ in range(EMA_CALIBRATION_BATCHES):
                picks = torch.randint(len(self.dataset.embeddings), (self.config.batch_size,), generator=rng)
                noise = torch.randn(self.config.batch_size, self.ema.noise_dim, generator=rng)
                self.ema(
                    to_device_async(noise, self.dist.device),
                    self.dataset.embeddings[to_device_async(picks, self.dist.device)],
                )
        self.ema.eval()
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum

    # --- checkpointing -------------------------------------------------
    def _rng_states(self) -> dict[str, torch.Tensor]:
        """Every RNG a step draws from: the data RNG, the augmentation RNG, and torch's global one
        (which plugins may use, e.g. conditioning augmentation's sampling)."""
        states = {"data": self.rng.get_state(), "torch": torch.get_rng_state()}
        if self.dist.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.dist.device)
        if isinstance(self.judge, AugmentedDiscriminator):
            states["augment"] = self.judge.generator.get_state()
        return states

    def _set_rng_states(self, states: dict[str, torch.Tensor]) -> None:
        self.rng.set_state(states["data"])
        torch.set_rng_state(states["torch"])
        if "cuda" in states and self.dist.device.type == "cuda":
            torch.cuda.set_rng_state(states["cuda"], self.dist.device)
        if isinstance(self.judge, AugmentedDiscriminator):
            self.judge.generator.set_state(states["augment"])

    def _state(self) -> dict:
        rng_states = [self.rng_snapshot]
        if self.dist.world > 1:
            rng_states = [None] * self.dist.world
            dist.all_gather_object(rng_states, self.rng_snapshot)
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "ema_updates": self.ema_updates,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scalers": {"d": self.scalers[0].state_dict(), "g": self.scalers[1].state_dict()},  # {} each unless fp16
            "rng": rng_states,
            "epoch": self.epoch,
            "step": self.step,
            "sums": dict(self.sums),
            "history": list(self.history),
            "train_seconds": self.train_seconds,
            "world": self.dist.world,
            "image_size": self.config.image_size,
        }

    def save(self) -> None:
        self._sync()  # `sums` in the checkpoint must cover every step it counts (and a NaN must not be saved)
        if self.ema is not None and self.dist.main:  # only rank 0 writes and renders the average
            self.recalibrate_ema()
        state = self._state()  # collective under DDP: every rank takes part
        if self.dist.main:
            save_checkpoint(self.run_dir, state, self.inference_generator)

    def _restore(self, text_dim: int) -> None:
        state = load_checkpoint(self.run_dir)
        missing = [
            k for k in self._state() if k not in state and k not in OPTIONAL_STATE
        ]  # every key `save` writes (collective under DDP, as here on every rank)
        if missing:
            raise LabError(
                f"{self.run_dir / 'checkpoint.pt'} lacks {', '.join(missing)}: written by another version of the lab, or not by `lab train`"
            )
        _, saved_dim = read_run_config(self.run_dir)
        check_compatible(self.run_dir, saved_dim, text_dim, state["image_size"], self.config.image_size)
        load_state_dict(self.generator, state["generator"], "generator checkpoint")
        load_state_dict(self.discriminator, state["discriminator"], "discriminator checkpoint")
        if self.ema is not None:
            load_state_dict(self.ema, state["ema"] or state["generator"], "EMA generator checkpoint")
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for scaler, saved in zip(self.scalers, (state.get("scalers", {}).get(k) for k in "dg")):
            if scaler.is_enabled() and saved:  # a run trained in another precision starts scaling afresh
                scaler.load_state_dict(saved)
        for opt, lr in ((self.opt_g, self.config.lr), (self.opt_d, self.config.lr_discriminator)):
            for group in opt.param_groups:  # a --lr given on resume applies from here on
                group["lr"] = lr
        self.epoch, self.step, self.sums, self.history = state["epoch"], state["step"], state["sums"], state["history"]
        self.train_seconds, self.ema_updates = state["train_seconds"], state["ema_updates"]
        if self.dist.main:
            self.write_metrics()
        if state["world"] == self.dist.world:
            self._set_rng_states(state["rng"][self.dist.rank])
            self.rng_snapshot = self._rng_states()
        elif self.step:  # another process count shards the epoch differently: redo it from its start
            if self.dist.main:
                print(
                    f"resuming on {self.dist.world} process(es) instead of {state['world']}: epoch {self.epoch + 1} restarts",
                    file=sys.stderr,
                )
            self.step, self.sums = 0, {}

    # --- the loop ------------------------------------------------------
    def batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch: the same on every run for a given seed and epoch."""
        sampler = DistributedSampler(self.dataset, self.dist.world, self.dist.rank, shuffle=True, seed=self.config.seed)
        sampler.set_epoch(self.epoch)
        order, size = list(sampler), self.config.batch_size
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        return [b for b in batches if len(b) > 1]  # batch norm cannot train on a single image

    def _to_device(self, batch: dict) -> dict:
        def move(v):
            if not torch.is_tensor(v):
                return v
            v = to_device_async(v, self.dist.device)  # a no-op for what the dataset already holds there
            return v.contiguous(memory_format=self.memory_format) if v.dim() == 4 else v

        return {k: move(v) for k, v in batch.items()}

    def _batch(self, indices: list[int]) -> dict:
        """The batch's images, wrong images and embeddings, drawn with the run's RNG, on the device."""
        return self._to_device(self.dataset.__getitems__(indices))

    def _noise(self, n: int) -> torch.Tensor:
        return to_device_async(
            torch.randn(n, self.generator.noise_dim, generator=self.rng), self.dist.device
        )  # the run's checkpointed RNG

    def train_batch(self, indices: list[int]) -> dict[str, torch.Tensor | float]:
        """Fetch one batch (with its wrong images and noise from the run's RNG) and train on it."""
        batch = self._batch(indices)
        terms = train_step(
            self.painter,
            self.judge,
            self.recipe,
            self.opt_g,
            self.opt_d,
            batch,
            self._noise(len(indices)),
            self.scalers,
        )
        if self.ema is not None:
            self.update_ema()
        self.window[0] += len(indices)
        return terms

    def run(self) -> None:
        """Train until `epochs`, or until `time_limit` minutes of training steps have passed (the epoch then ends early).

        Time spent is checkpointed, so a resumed run gets only what is left of its budget."""
        while self.epoch < self.config.epochs and not self._time_is_up():
            batches = self.batches()
            bar = tqdm(
                total=len(batches),
                initial=self.step,
                desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
                disable=not self.progress,
                unit="batch",
            )
            start, seen = time.perf_counter(), 0
            self.window = [0, start]
            while self.step < len(batches):
                step_start = time.perf_counter()
                self._decay_learning_rates(len(batches))
                self.pending.append(self.train_batch(batches[self.step]))
                seen += len(batches[self.step])
                self.step += 1
                synced = len(self.pending) >= self.config.sync_every or self.step == len(batches)
                if synced:
                    last = self._sync()  # timed with the step: the wait for the GPU is training time
                    bar.set_postfix(d=f"{last['d_loss']:.3f}", g=f"{last['g_loss']:.3f}", refresh=False)
                self.train_seconds += time.perf_counter() - step_start
                self.rng_snapshot = self._rng_states()
                bar.update(1)
                if self.stop_requested:
                    raise KeyboardInterrupt
                # Under DDP, agreeing to stop is a collective (a wait on every rank): done only where the loop syncs anyway.
                if (synced or self.dist.world == 1) and self._time_is_up():
                    break
            bar.close()
            self._end_epoch(self.step, seen * self.dist.world / max(time.perf_counter() - start, 1e-9))
        if self._time_is_up() and self.dist.main:
            print(f"time limit of {self.config.time_limit:g} min reached after {self.epoch} epoch(s)", file=sys.stderr)

    def _sync(self) -> dict[str, float]:
        """Read the pending steps' terms back to the host in one transfer, check them, add them to `sums`; returns
        the last step's terms ({} when none is pending).

        Every read of a device tensor makes the host wait until the GPU has caught up, so reading each term
        every step (`.item()`) would stall the loop as many times; this waits once per `sync_every` steps.
        The terms are still checked step by step, so a NaN is reported at the step it appeared, and `sums`
        adds them in step order as floats, exactly as when each was read at once."""
        tensors = [v for terms in self.pending for v in terms.values() if torch.is_tensor(v)]
        values = iter(torch.stack(tensors).tolist() if tensors else [])
        last: dict[str, float] = {}
        window: dict[str, float] = {}  # sums over these steps, for the live curves
        for step, terms in enumerate(self.pending, self.step - len(self.pending) + 1):
            last = {k: next(values) if torch.is_tensor(v) else v for k, v in terms.items()}
            bad = [k for k, v in last.items() if not math.isfinite(v)]
            if bad:
                kept = (
                    f"the last good checkpoint (epoch {self.epoch}) is kept in {self.run_dir}"
                    if self.epoch
                    else "no epoch had finished, so no checkpoint was saved"
                )
                raise LabError(
                    f"loss became {last[bad[0]]} ({', '.join(bad)}) at epoch {self.epoch + 1} step {step}; "
                    f"training stopped, {kept}; try a lower --lr"
                )
            for k, v in last.items():
                self.sums[k] = self.sums.get(k, 0.0) + v
                window[k] = window.get(k, 0.0) + v
        if self.tb is not None and self.pending:
            self._log_window({k: v / len(self.pending) for k, v in window.items()})
        self.pending = []
        return last

    def _log_window(self, means: dict[str, float]) -> None:
        """The live curves: each loss term's mean over the steps since the last sync, images/s over them, the learning rates."""
        images, since = self.window
        now = time.perf_counter()
        self.window = [0, now]
        values = {f"loss/{k}": v for k, v in means.items()}
        values["speed/images_per_s"] = images / max(now - since, 1e-9)
        values["lr/generator"], values["lr/discriminator"] = (
            self.opt_g.param_groups[0]["lr"],
            self.opt_d.param_groups[0]["lr"],
        )
        self.tb.scalars(values, self.global_step)

    def _time_is_up(self) -> bool:
        """Whether `time_limit` is spent; rank 0's clock decides, so DDP ranks stop at the same step."""
        if not self.config.time_limit:
            return False
        spent = self.train_seconds / (self.config.time_limit * 60)
        if self.dist.world > 1:  # on this rank's device: NCCL only moves CUDA tensors
            flag = torch.tensor(spent, device=self.dist.device)
            dist.broadcast(flag, 0)
            spent = float(flag)
        self.time_spent = spent
        return spent >= 1

    def _decay_learning_rates(self, steps_per_epoch: int) -> None:
        """With `lr_decay`, both learning rates fall linearly to 0 as the budget is spent: "budgeted training"
        (Li et al. 2020), where for supervised nets a schedule that ends with the budget beats a constant rate
        cut off by it. A GAN's game may still be far from settled when the budget ends: on the 5-minute main
        job it measured worse (README), so it is off by default.
        The budget is `epochs` or `time_limit`, whichever is further along; time as the ranks last agreed on it,
        so every rank steps with the same rate. Both are checkpointed, so a resumed run picks up the schedule."""
        if not self.config.lr_decay:
            return
        spent = max((self.epoch + self.step / steps_per_epoch) / self.config.epochs, self.time_spent)
        for opt, lr in ((self.opt_g, self.config.lr), (self.opt_d, self.config.lr_discriminator)):
            for group in opt.param_groups:
                group["lr"] = lr * max(1 - spent, 0.0)

    def _end_epoch(self, steps: int, images_per_s: float) -> None:
        self._sync()  # what a time limit cut short of the last sync
        means = {k: v / max(steps, 1) for k, v in self.sums.items()}
        if (
            self.dist.world > 1
        ):  # average the logged losses over ranks, on this rank's device: NCCL only moves CUDA tensors
            values = torch.tensor(list(means.values()), dtype=torch.float64, device=self.dist.device)
            dist.all_reduce(values)
            means = dict(zip(means, (values / self.dist.world).tolist()))
        self.epoch, self.step, self.sums = self.epoch + 1, 0, {}
        self.history.append(
            {"epoch": self.epoch, **{k: round(v, 6) for k, v in means.items()}, "images_per_s": round(images_per_s, 1)}
        )
        self.save()  # metrics.jsonl is written from the checkpoint's history, so a kill in between never duplicates a line
        last = self.epoch == self.config.epochs or self._time_is_up()
        if self.dist.main:
            self.write_metrics()
            if self.epoch % self.config.sample_every == 0 or last:
                self.save_samples()

    def write_metrics(self) -> None:
        atomic_write(
            self.run_dir / METRICS, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in self.history))
        )
        if self.history:
            save_loss_plot(self.history, self.run_dir / "losses.png")

    def save_samples(self) -> Path:
        """Fixed captions x fixed noise, so grids from different epochs are directly comparable."""
        pipe = Pipeline(self.inference_generator, self.encoder, precision=self.precision)
        images = pipe(self.sample_texts, SAMPLES_PER_CAPTION, seed=self.config.seed)
        path = self.run_dir / "samples" / f"epoch_{self.epoch:03d}.png"
        path.parent.mkdir(exist_ok=True)
        grid = caption_grid(images, self.sample_texts, SAMPLES_PER_CAPTION)
        grid.save(path)
        if self.tb is not None:
            self.tb.image("samples", grid, self.global_step)
        return path


@contextmanager
def stop_between_steps(trainer: Trainer):
    """First Ctrl-C: finish the current step, then save and stop. A second Ctrl-C stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        print("\nstopping after this step (Ctrl-C again to stop now)...", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def train(
    config: ExperimentConfig, resume: str | Path | None = None, progress: bool = True, force: bool = False
) -> Path:
    """Train (or resume) a run; returns its directory. Ctrl-C saves a checkpoint to resume from.
    `force` trains a new run into a folder that holds files (see `prepare_run_dir`)."""
    run_dir = Path(resume) if resume else Path(config.out_dir)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    # One process per run directory; under torchrun, rank 0 holds the lock for the job.
    with run_lock(run_dir) if rank0 else nullcontext():
        changed = prepare_run_dir(run_dir, config, bool(resume), force) if rank0 else {}
        trainer = Trainer(config, run_dir, resume=bool(resume), progress=progress)
        record_resume(run_dir, config, changed, trainer.epoch, trainer.step)
        try:
            with stop_between_steps(trainer):
                trainer.run()
            trainer._barrier()  # no rank tears the group down while rank 0 still writes samples: all leave together
        except KeyboardInterrupt:
            trainer.save()
            if trainer.dist.main:
                print(
                    f"\ninterrupted at epoch {trainer.epoch + 1} step {trainer.step}; saved. Continue with: lab train --resume {run_dir}",
                    file=sys.stderr,
                )
            raise
        finally:
            if trainer.tb is not None:
                trainer.tb.close()
            if trainer.dist.world > 1 and dist.is_initialized():
                dist.destroy_process_group()
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
