"""Training throughput of any config on the current device, in images/sec.

    .venv/bin/python benchmarks/train_speed.py cfg/damsm/shapes.yml [--set KEY=VALUE ...] [--steps 20]

Builds the run exactly as `ganstack train` does (same variant, trainer, precision),
then times `--steps` optimisation steps after `--warmup` untimed ones: once on a
batch already in memory (compute only) and once through the data loader
(end to end). Nothing is written to the run folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch

from ganstack.config import load_config
from ganstack.engine.trainer import Trainer, _to_device


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cfg")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(args.cfg, args.overrides + [f"OUTPUT_DIR={out}"])
        trainer = Trainer(cfg, device=args.device)
        variant, opt, dev = trainer.variant, trainer.updater, trainer.env.device
        variant.train(True)
        batches = iter(trainer._loader())
        batch = _to_device(next(batches), dev)
        for i in range(args.warmup):
            variant.train_step(batch, i, opt)
        sync(dev)
        t0 = time.perf_counter()
        for i in range(args.steps):
            variant.train_step(batch, i, opt)
        sync(dev)
        compute = args.steps * cfg.TRAIN.BATCH_SIZE / (time.perf_counter() - t0)
        n, t0 = 0, time.perf_counter()
        for i in range(args.steps):
            b = next(batches, None)
            if b is None:
                batches = iter(trainer._loader())
                b = next(batches)
            variant.train_step(_to_device(b, dev), i, opt)
            n += b["size"] if "size" in b else cfg.TRAIN.BATCH_SIZE
        sync(dev)
        end_to_end = n / (time.perf_counter() - t0)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(json.dumps({"config": args.cfg, "overrides": args.overrides, "device": name,
                      "precision": cfg.TRAIN.PRECISION, "batch_size": cfg.TRAIN.BATCH_SIZE,
                      "images_per_sec_compute": round(compute, 2),
                      "images_per_sec_end_to_end": round(end_to_end, 2)}))


if __name__ == "__main__":
    sys.exit(main())
