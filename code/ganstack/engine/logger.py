"""Training logs: TensorBoard event files in the run folder, MLflow when TRAIN.LOGGERS names it,
and a terminal view (a tqdm bar on terminals, plain lines otherwise). Only rank 0 logs."""
from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

import torch


class Logger:
    def __init__(self, run_dir: Path, *, enabled: bool, total_steps: int, start_step: int, interval: int,
                 cfg=None):
        self.enabled = enabled
        self.interval = interval
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)  # per key: some losses skip steps (WGAN's G)
        self.count = 0
        self.writer = None
        self.mlflow = None
        self.bar = None
        self.finished = False  # set when training ends or pauses normally (MLflow's run status)
        if not enabled:
            return
        loggers = cfg.TRAIN.LOGGERS if cfg is not None else ["tensorboard"]
        if "tensorboard" in loggers:
            from torch.utils.tensorboard import SummaryWriter  # import cost only on rank 0
            self.writer = SummaryWriter(log_dir=str(run_dir))
        if "mlflow" in loggers:
            from .mlflow_sink import MlflowSink
            self.mlflow = MlflowSink(cfg, run_dir)
        if sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)
        self.last_time = time.perf_counter()

    def text(self, tag: str, text: str, step: int = 0) -> None:
        if self.writer:
            self.writer.add_text(tag, text, step)
        if self.mlflow:
            self.mlflow.text(tag, text, step)

    def info(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)

    def accumulate(self, scalars: dict[str, float]) -> None:
        for k, v in scalars.items():
            self.sums[k] += v
            self.counts[k] += 1
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)

    def flush_scalars(self, step: int, extra: dict[str, float]) -> None:
        """Write the means since the last flush plus `extra` (lrs, speed)."""
        if not self.enabled or self.count == 0:
            return
        means = {k: v / self.counts[k] for k, v in self.sums.items()}
        means.update(extra)
        self.scalars(means, step)
        shown = "  ".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in means.items())
        if self.bar is not None:
            self.bar.set_postfix_str(shown, refresh=False)
        else:
            print(f"step {step}  {shown}", flush=True)
        self.sums.clear()
        self.counts.clear()
        self.count = 0

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Write values at once (no averaging): evaluation results."""
        if self.writer:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)
        if self.mlflow:
            self.mlflow.scalars(values, step)

    def images(self, tag: str, grid: torch.Tensor, step: int) -> None:
        if self.writer:
            self.writer.add_image(tag, grid, step)
        if self.mlflow:
            self.mlflow.image(tag, grid, step)

    def report(self, name: str, report: dict, step: int) -> None:
        """A whole eval report: an artifact in MLflow (TensorBoard gets its scalars)."""
        if self.mlflow:
            from .mlflow_sink import report_json
            self.mlflow.report(name, report_json(report), step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer:
            self.writer.close()
        if self.mlflow:
            self.mlflow.close(self.finished)
