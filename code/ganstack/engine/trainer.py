"""The shared training loop. Every variant runs on it; none edits it.

The trainer owns devices (CPU, one GPU, torchrun's many), DDP wrapping,
precision, EMA, learning-rate schedules, checkpoints, resume and logs. The
variant owns its networks, optimizers and one training step (variants/base.py).

Exact resume: the data order is a pure function of (SEED, epoch) and each
sample carries its own augmentation seed (data/sampler.py); the checkpoint
holds every RNG state of every rank plus the position inside the epoch; the
learning rate is a pure function of progress. So on CPU, stop-and-resume
reproduces the uninterrupted run bit for bit.
"""
from __future__ import annotations

import contextlib
import gc
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..config import Config, dump_config
from ..errors import GanstackError
from ..io import remove_leftovers, write_failure_reason, write_text_atomic
from ..variants import get_variant
from ..variants.base import Variant, unwrap
from . import distributed
from .checkpoint import (latest_checkpoint, list_checkpoints, load_checkpoint, rng_state, save_checkpoint,
                         set_rng_state)
from .ema import EMA
from .logger import Logger
from .optim import NonFiniteLoss, Updater
from .schedule import Plateau, lr_factor
from ..data.sampler import BucketBatchSampler, DebugSubset, ResumableSampler

CHECKPOINT_VERSION = 1
_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(Exception):
    """Raised after the stop checkpoint is written; carries the shell exit code."""

    def __init__(self, signum: int, path: Path | None):
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint {path}")
        self.exit_code = _EXIT_CODES.get(signum, 1)


def run_dir_of(cfg: Config) -> Path:
    return Path(cfg.OUTPUT_DIR) / cfg.RUN_NAME


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, cfg: Config, *, device: str = "auto", resume: str | None = None, restart: bool = False):
        self.cfg = cfg
        self.env = distributed.setup(device, cfg.TRAIN.DIST_TIMEOUT, cfg.TRAIN.DETERMINISTIC)
        self.run_dir = run_dir_of(cfg)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.stop_signal: int | None = None
        if restart and self.env.is_main:
            self._set_aside_old_run()
        distributed.barrier(self.env)

        seed_everything(cfg.SEED)  # same initial weights on every rank
        self.variant: Variant = get_variant(cfg.VARIANT)(cfg, self.env.device)
        self.dataset = self.variant.dataset("train", train=True)
        self.variant.build(self.dataset)
        self._place_nets()
        self.ema = EMA({n: unwrap(self.variant.nets[n]) for n in self.variant.ema_nets}, cfg.TRAIN.EMA_DECAY)
        self.variant.ema = self.ema.nets
        self.updater = Updater(self.variant.optimizers, cfg.TRAIN.PRECISION, self.env.device,
                               agree=lambda flag: distributed.any_rank(self.env, flag))
        seed_everything(cfg.SEED + 1000003 * self.env.rank)  # per-rank dropout / noise streams

        self.buckets = cfg.TRAIN.BATCH_SIZE if isinstance(cfg.TRAIN.BATCH_SIZE, list) else None
        if self.buckets is not None and not hasattr(self.dataset, "batch_groups"):
            raise GanstackError(f"TRAIN.OPTIMIZE_DATA_LOADING: VARIANT={cfg.VARIANT} has no object counts to group "
                                "batches by (OP-GAN has); set it false and TRAIN.BATCH_SIZE to one number")
        if cfg.DEBUG:  # after build: the vocabulary and the nets see the whole set, training a few items
            self.dataset = DebugSubset(self.dataset, cfg.DEBUG_NUM_DATAPOINTS, per_group=self.buckets is not None)
        self.step = self.epoch = self.pos = 0
        self.batch_size = max(self.buckets) if self.buckets else cfg.TRAIN.BATCH_SIZE  # the largest, for logs
        per_rank = -(-len(self.dataset) // self.env.world)
        self.steps_per_epoch = (len(self._batch_sampler(0)) if self.buckets else per_rank // self.batch_size)
        if self.steps_per_epoch == 0:
            raise GanstackError(f"TRAIN.BATCH_SIZE={self.batch_size} is larger than the {per_rank} training "
                                f"images each process gets from {cfg.DATA_DIR}: lower TRAIN.BATCH_SIZE")
        self.total_steps = cfg.TRAIN.MAX_STEPS or cfg.TRAIN.MAX_EPOCH * self.steps_per_epoch
        self.plateau = Plateau()  # TRAIN.LR_SCHEDULE plateau: fed the epoch means of variant.plateau_metric
        self.train_seconds = 0.0  # time in training steps over every run of this folder (TRAIN.MAX_MINUTES)
        self.resumed_from = self._resume(resume)

    # ----------------------------------------------------------------- set-up
    def _set_aside_old_run(self) -> None:
        """--restart never deletes: the old run folder is renamed with a time stamp."""
        if self.run_dir.exists():
            aside = self.run_dir.with_name(f"{self.run_dir.name}.{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.move(str(self.run_dir), str(aside))
            print(f"--restart: previous run moved to {aside}", flush=True)

    def _place_nets(self) -> None:
        cfg, env = self.cfg, self.env
        for name, net in self.variant.nets.items():
            net.to(env.device)
            if cfg.TRAIN.CHANNELS_LAST:  # NHWC convolutions: faster on recent GPUs and on oneDNN CPUs
                net.to(memory_format=torch.channels_last)
            trainable = any(p.requires_grad for p in net.parameters())
            if env.distributed and trainable:
                if cfg.TRAIN.SYNC_BN:
                    net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
                ids = [env.device.index] if env.device.type == "cuda" else None
                net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
            self.variant.nets[name] = net

    def _resume(self, explicit: str | None) -> Path | None:
        if self.env.is_main:
            remove_leftovers(self.run_dir)  # what a kill -9 mid-write left (checkpoints, exports, config)
        if explicit:
            path, state = Path(explicit), load_checkpoint(explicit)  # damaged: one line, no fallback
        else:
            path, state = self._latest_loadable()
        if path is None:
            return None
        if state.get("variant") != self.cfg.VARIANT:
            raise GanstackError(f"{path}: checkpoint of variant {state.get('variant')!r}, but the config says "
                                f"VARIANT={self.cfg.VARIANT!r}; use --restart or another RUN_NAME")
        for name, net in self.variant.nets.items():
            try:
                unwrap(net).load_state_dict(state["nets"][name])
            except (KeyError, RuntimeError) as e:
                first = str(e).strip().splitlines()[0]
                raise GanstackError(f"{path}: network {name} does not match the config ({first}); "
                                    f"resume with the config it was trained with, or use --restart") from None
        self.ema.load_state_dict(state["ema"])
        self.updater.load_state_dict(state["updater"])
        self.plateau.load_state_dict(state.get("plateau", self.plateau.state_dict()))
        self.variant.load_training_state(state.get("variant_state", {}))
        self.step, self.epoch, self.pos = state["step"], state["epoch"], state["pos"]
        self.train_seconds = float(state.get("train_seconds", 0.0))
        rngs = state["rng"]
        if len(rngs) != self.env.world or state.get("batch_size") != self.batch_size:
            print(f"warning: {path} was written by {len(rngs)} process(es) with batch {state.get('batch_size')}; "
                  f"resuming with {self.env.world} x {self.batch_size} continues, but not bit-identically",
                  flush=True)
            self.pos = min(self.pos * state.get("batch_size", self.batch_size) // self.batch_size,
                           self.steps_per_epoch)
        else:
            set_rng_state(rngs[self.env.rank])
        return path

    def _latest_loadable(self) -> tuple[Path | None, dict | None]:
        """The newest checkpoint that loads. Damaged newer ones (a truncated copy, a failing disk)
        are named, renamed to *.damaged (kept, out of rotation) and skipped."""
        found = list_checkpoints(self.ckpt_dir)
        damaged, path, state = [], None, None
        for candidate in reversed(found):
            try:
                path, state = candidate, load_checkpoint(candidate)
                break
            except GanstackError as e:
                damaged.append((candidate, str(e)))
                path = None
        distributed.barrier(self.env)  # every rank has read before rank 0 renames
        if damaged and path is None:
            raise GanstackError(f"{self.ckpt_dir}: no checkpoint loads ({damaged[0][1]}); nothing to resume: "
                                "--restart to begin anew (the run folder is set aside, not deleted)")
        if self.env.is_main:
            for bad, why in damaged:
                os.replace(bad, bad.with_name(bad.name + ".damaged"))
                print(f"warning: {why}: renamed to {bad.name}.damaged; resuming from {path.name}",
                      file=sys.stderr, flush=True)
        return path, state

    # ------------------------------------------------------------ checkpoints
    def _state(self) -> dict:
        rngs = distributed.gather_objects(self.env, rng_state())
        return {
            "version": CHECKPOINT_VERSION,
            "variant": self.cfg.VARIANT,
            "step": self.step, "epoch": self.epoch, "pos": self.pos, "train_seconds": self.train_seconds,
            "batch_size": self.batch_size,
            "nets": {n: unwrap(net).state_dict() for n, net in self.variant.nets.items()},
            "ema": self.ema.state_dict(),
            "updater": self.updater.state_dict(),
            "plateau": self.plateau.state_dict(),
            "variant_state": self.variant.training_state(),
            "rng": rngs,
            "config": self.cfg.to_dict(),
        }

    def save(self) -> Path | None:
        """Write the checkpoint (and the variant's exports). A failed write (disk full, quota, file
        size limit) stops training: a run must never go on without checkpoints."""
        state = self._state()  # collective: every rank takes part
        path, failure = None, None
        if self.env.is_main:
            try:
                path = save_checkpoint(state, self.ckpt_dir, self.step, self.cfg.TRAIN.KEEP_CHECKPOINTS)
                self.variant.export(self.run_dir)
            except (OSError, RuntimeError) as e:  # torch.save raises RuntimeError on a full disk
                failure = e
        if distributed.any_rank(self.env, failure is not None):
            previous = latest_checkpoint(self.ckpt_dir)
            why = write_failure_reason(self.ckpt_dir, failure) if failure is not None else "on rank 0"
            raise GanstackError(f"{self.ckpt_dir}: could not write the checkpoint of step {self.step} ({why}); "
                                "training stopped rather than go on without checkpoints; "
                                + (f"{previous.name} is intact: " if previous else "")
                                + "free space and run the same command to resume")
        return path

    # ------------------------------------------------------------------- loop
    def _batch_sampler(self, start: int) -> BucketBatchSampler:
        """TRAIN.OPTIMIZE_DATA_LOADING: batches of one object count each, sized by TRAIN.BATCH_SIZE[count]."""
        return BucketBatchSampler(self.dataset.batch_groups(), self.buckets, seed=self.cfg.SEED, epoch=self.epoch,
                                  rank=self.env.rank, world=self.env.world, start=start)

    def _loader(self) -> torch.utils.data.DataLoader:
        # The loader's own generator keeps worker seeding off the global RNG stream.
        gen = torch.Generator().manual_seed(self.cfg.SEED + self.epoch)
        common = dict(num_workers=self.cfg.WORKERS, collate_fn=self.variant.collate, generator=gen,
                      pin_memory=self.env.device.type == "cuda", worker_init_fn=_ignore_stop_signals)
        if self.buckets:
            return torch.utils.data.DataLoader(self.dataset, batch_sampler=self._batch_sampler(self.pos), **common)
        sampler = ResumableSampler(len(self.dataset), seed=self.cfg.SEED, epoch=self.epoch,
                                   rank=self.env.rank, world=self.env.world, start=self.pos * self.batch_size)
        return torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_size, sampler=sampler, drop_last=True,
                                           **common)

    def _on_signal(self, signum, frame) -> None:
        self.stop_signal = signum

    def _write_run_header(self, logger: Logger) -> None:
        text = dump_config(self.cfg)
        if self.env.is_main:
            write_text_atomic(self.run_dir / "config.yml", text)
        logger.text("config", "```\n" + text + "\n```", self.step)
        g = self.batch_size * self.env.world
        batch = f"batch by object count {self.buckets}" if self.buckets else f"batch {self.batch_size}"
        logger.info(f"{self.cfg.VARIANT}: {len(self.dataset)} training images, {batch} x "
                    f"{self.env.world} process(es) = {g}, {self.steps_per_epoch} steps/epoch, "
                    f"{self.total_steps} steps, device {self.env.device}, {self.updater.precision}; "
                    f"run folder {self.run_dir}"
                    + (f"; resumed from {self.resumed_from} at step {self.step}" if self.resumed_from else ""))

    def fit(self, pause: Callable[[int], bool] | None = None) -> Path:
        """Train to the end (or to a stop signal); returns the run folder.

        `pause(step)`, asked after every step, ends this call early when it returns True (on any
        rank): a checkpoint is written as at the end, and calling fit() again continues exactly
        where it stopped (scripts/learning_curve.py trains in chunks this way). The learning-rate
        schedule still runs to TRAIN.MAX_STEPS / MAX_EPOCH."""
        cfg, env = self.cfg, self.env
        logger = Logger(self.run_dir, enabled=env.is_main, total_steps=self.total_steps,
                        start_step=self.step, interval=cfg.TRAIN.LOG_INTERVAL, cfg=cfg)
        previous = {s: signal.signal(s, self._on_signal) for s in _EXIT_CODES}
        try:
            self._write_run_header(logger)
            ended = self._loop(logger, pause)
            if self.stop_signal is None:
                path = self.save()
                logger.finished = True
                how = {"paused": "paused", "budget": f"TRAIN.MAX_MINUTES={cfg.TRAIN.MAX_MINUTES} of training "
                       "reached", "done": "finished"}[ended]
                logger.info(f"{how} at step {self.step}; checkpoint {path}")
        except NonFiniteLoss as e:
            last = latest_checkpoint(self.ckpt_dir)
            raise GanstackError(f"{e}; training stopped, last good checkpoint: {last or 'none yet'}") from None
        except Exception as e:
            if not (env.distributed and distributed.is_communication_error(e)):
                raise
            # torchrun sends SIGTERM to the survivors as soon as it notices the dead worker; this
            # process is stopping anyway and must live long enough to say why, so it ignores it.
            previous[signal.SIGTERM] = signal.SIG_IGN
            last = latest_checkpoint(self.ckpt_dir)
            raise GanstackError(f"rank {env.rank}: lost contact with the other processes at step {self.step}: "
                                f"{distributed.lost_peers(env)} ({distributed.error_summary(e)}); training stopped, "
                                f"the last checkpoint is {last or 'none yet'}: run the same command to "
                                "resume") from None
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            logger.close()
        return self.run_dir

    def _out_of_time(self) -> bool:
        budget = self.cfg.TRAIN.MAX_MINUTES * 60
        if budget <= 0:  # the same config on every rank: no collective needed
            return False
        return distributed.any_rank(self.env, self.train_seconds >= budget)

    def _loop(self, logger: Logger, pause: Callable[[int], bool] | None = None) -> str:
        """The steps up to total_steps ("done"), or fewer: "paused" by `pause`, "budget" at TRAIN.MAX_MINUTES."""
        cfg, env = self.cfg, self.env
        self.variant.train(True)
        images_seen, busy, data_wait, skipped = 0, 0.0, 0.0, 0
        while self.step < self.total_steps:
            if self._out_of_time():  # also a resumed run whose budget is spent: no step more
                return "budget"
            batches = iter(self._loader())
            fetched = trained = 0  # batches and steps of this epoch (in this call)
            while self.step < self.total_steps:
                t0 = time.perf_counter()
                batch = next(batches, None)
                t1 = time.perf_counter()
                if batch is None:  # epoch exhausted
                    if distributed.any_rank(env, fetched == self.steps_per_epoch and trained == 0):
                        raise GanstackError(f"DATA_DIR={cfg.DATA_DIR}: not one readable training batch in a whole "
                                            f"epoch ({skipped} images skipped as unreadable so far); check the "
                                            "image files (the warnings above name them)")
                    self._end_epoch_plateau()
                    self.epoch, self.pos = self.epoch + 1, 0
                    break
                self.pos, fetched = self.pos + 1, fetched + 1
                skipped += batch.get("skipped", 0)
                # every process skips together: one skipping alone would pair its collectives with
                # the others' next step and hang the run
                if distributed.any_rank(env, batch.get("size", 1) == 0):
                    continue
                trained += 1
                self._set_lr()
                self.updater.step = self.step
                scalars = self.variant.train_step(_to_device(batch, env.device), self.step, self.updater)
                self.ema.update({n: unwrap(self.variant.nets[n]) for n in self.variant.ema_nets})
                if self.variant.plateau_metric in scalars:
                    self.plateau.add(scalars[self.variant.plateau_metric])
                self.step += 1
                t2 = time.perf_counter()
                images_seen += batch.get("size", self.batch_size) * env.world
                busy, data_wait = busy + (t2 - t0), data_wait + (t1 - t0)
                self.train_seconds += t2 - t0
                logger.accumulate(scalars)
                if self.step % cfg.TRAIN.LOG_INTERVAL == 0 or self.step == self.total_steps:
                    extra = {f"lr/{k}": v for k, v in self.updater.lrs().items()}
                    extra.update({"speed/images_per_sec": images_seen / max(busy, 1e-9),
                                  "speed/data_time_fraction": data_wait / max(busy, 1e-9),
                                  "data/skipped_images": float(skipped), "epoch": float(self.epoch)})
                    logger.flush_scalars(self.step, extra)
                    images_seen, busy, data_wait = 0, 0.0, 0.0
                if env.is_main and self.step % cfg.TRAIN.IMAGE_INTERVAL == 0:
                    self._log_visuals(logger, batch)
                if env.is_main and cfg.TRAIN.EVAL_INTERVAL > 0 and self.step % cfg.TRAIN.EVAL_INTERVAL == 0:
                    self._log_evaluation(logger)
                if distributed.any_rank(env, self.stop_signal is not None):
                    self._stop(logger)
                if self.step % cfg.TRAIN.SNAPSHOT_INTERVAL == 0 and self.step < self.total_steps:
                    self.save()
                if pause is not None and self.step < self.total_steps and distributed.any_rank(env, pause(self.step)):
                    return "paused"
                if self.step < self.total_steps and self._out_of_time():
                    return "budget"
        return "done"

    def _stop(self, logger: Logger) -> None:
        signum = self.stop_signal or signal.SIGTERM  # another rank may have received it
        self.stop_signal = signum
        path = self.save()
        logger.info(f"{signal.Signals(signum).name} received: checkpoint {path} written at step "
                    f"{self.step}; run the same command again to resume")
        raise Interrupted(signum, path)

    def _end_epoch_plateau(self) -> None:
        """Every process closes the epoch with the same mean, so the learning rates stay equal."""
        p = self.plateau
        sums = distributed.gather_objects(self.env, (p.total, p.count))
        count = sum(c for _, c in sums)
        p.end_epoch(sum(t for t, _ in sums) / count if count else None)

    def _set_lr(self) -> None:
        t = self.cfg.TRAIN
        kind = self.variant.lr_schedule if t.LR_SCHEDULE == "auto" else t.LR_SCHEDULE
        if kind == "plateau" and not self.variant.plateau_metric:
            raise GanstackError(f"TRAIN.LR_SCHEDULE=plateau: VARIANT={self.cfg.VARIANT} monitors no loss for it; "
                                "choose linear, cosine, step or exponential")
        self.updater.set_lr_factor(lr_factor(kind, epoch=self.epoch, step=self.step,
                                             total_steps=self.total_steps, decay=t.LR_DECAY,
                                             min_factor=t.LR_MIN_FACTOR, constant_epochs=t.LR_CONSTANT_EPOCHS,
                                             steps_per_epoch=self.steps_per_epoch, step_epochs=t.LR_STEP_EPOCHS,
                                             step_gamma=t.LR_STEP_GAMMA, plateau_factor=self.plateau.factor))

    @contextlib.contextmanager
    def _bare_eval_mode(self):
        # Rank 0 alone draws visuals and evaluates: through the bare modules, because a DDP
        # forward is a collective (buffer broadcast) the other ranks never join. The RNG
        # states are restored after, so visuals and evaluations never change the training.
        wrapped = dict(self.variant.nets)
        self.variant.nets.update({n: unwrap(net) for n, net in wrapped.items()})
        self.variant.train(False)
        rngs = rng_state()
        try:
            with torch.no_grad():
                yield
        finally:
            set_rng_state(rngs)
            self.variant.nets.update(wrapped)
            self.variant.train(True)

    def evaluate(self, cfg: Config | None = None, *, spread_captions: bool = False) -> dict:
        """The `ganstack eval` report of the current weights (rank 0 only; random states restored,
        so training continues unchanged). `cfg`: another EVAL protocol for generators of captions
        (e.g. fewer EVAL.NUM_IMAGES); `spread_captions`: see generation_metrics."""
        from .evaluate import generation_metrics
        cfg = cfg or self.cfg
        with self._bare_eval_mode():
            if hasattr(self.variant, "evaluation_conditions"):  # generators of conditions from captions
                report = generation_metrics(cfg, self.variant, cfg.EVAL.SPLIT, seed=0,
                                            spread_captions=spread_captions)
            else:  # encoders, image-to-image variants: their own metrics
                report = self.variant.evaluate(cfg.EVAL.SPLIT, seed=0)
        report.pop("reference_cache", None)
        return report

    def _log_evaluation(self, logger: Logger) -> None:
        """TRAIN.EVAL_INTERVAL: the `ganstack eval` metrics of the current weights, as curves."""
        from .evaluate import scalar_metrics
        report = self.evaluate()
        values = scalar_metrics(report)
        logger.scalars(values, self.step)
        logger.report("eval", report, self.step)
        shown = {k: v for k, v in values.items()
                 if k.endswith(("/fid", "colour_accuracy", "shape_accuracy", "fcn_score/pixel_accuracy"))}
        logger.info(f"eval at step {self.step}: " + "  ".join(f"{k[5:]} {v:.4g}" for k, v in shown.items()))

    def _log_visuals(self, logger: Logger, batch: dict) -> None:
        with self._bare_eval_mode():
            visuals = self.variant.visuals(_to_device(batch, self.env.device))
        for tag, value in visuals.items():
            if isinstance(value, str):
                logger.text(tag, value, self.step)
            else:
                logger.images(tag, value.float().cpu(), self.step)


def _ignore_stop_signals(_worker_id: int) -> None:
    # Ctrl-C and SIGTERM reach the whole process group (a terminal, Slurm, `docker stop`);
    # workers keep serving until the main process has written its stop checkpoint, then
    # the main process shuts them down. A worker dying first would abort that write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _to_device(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list):
        return [_to_device(v, device) for v in batch]
    return batch


def train(cfg: Config, *, device: str = "auto", resume: str | None = None, restart: bool = False) -> Path:
    trainer = None
    try:
        trainer = Trainer(cfg, device=device, resume=resume, restart=restart)
        return trainer.fit()
    finally:
        # DDP modules keep the process group alive; free them (the trainer sits in reference
        # cycles) while the interpreter is whole, not in its shutdown, where gloo may abort.
        trainer = None
        gc.collect()
        distributed.teardown()
