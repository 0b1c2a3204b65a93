"""Inference throughput of an image-to-image generator (face aging, pix2pix, super-resolution), in images/sec.

    .venv/bin/python benchmarks/inference_speed.py cfg/aging_cycle/cacd.yml --sizes 256 512
    .venv/bin/python benchmarks/inference_speed.py cfg/aging_cycle/cacd.yml --sizes 512 --precision bf16 --channels-last

Builds the config's networks as `ganstack sample` does (random weights: speed does not depend on them)
and times the variant's own `sample` (no autograd, eval mode, the path sample.sh and serve take) on
random inputs of each --sizes side, --batch images at a time: --runs calls after --warmup untimed
ones, as Fast-AgingGAN's timing.py (50 calls, the first 10 untimed, batch 1). One JSON line per size.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch

from ganstack.config import load_config
from ganstack.engine.distributed import setup
from ganstack.variants import get_variant


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cfg")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                    help="autocast dtype of the generator (fp32: none; sample.sh and serve run fp32)")
    ap.add_argument("--channels-last", action="store_true", help="NHWC nets and inputs (oneDNN CPUs, recent GPUs)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(args.cfg, args.overrides + [f"OUTPUT_DIR={out}"])
        cls = get_variant(cfg.VARIANT)
        if getattr(cls, "condition_kind", "") != "image" or cls.builds_from_data:
            sys.exit(f"{args.cfg}: VARIANT={cfg.VARIANT} is not an image-to-image generator built without data")
        dev = setup(args.device).device
        variant = cls(cfg, dev)
        variant.build(None)
        layout = torch.channels_last if args.channels_last else torch.contiguous_format
        for net in variant.nets.values():
            net.to(dev, memory_format=layout).eval()
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
        for size in args.sizes:
            x = (torch.rand(args.batch, 3, size, size, device=dev) * 2 - 1).contiguous(memory_format=layout)
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                for _ in range(args.warmup):
                    variant.sample(x)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                t0 = time.perf_counter()
                for _ in range(args.runs):
                    variant.sample(x)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                seconds = (time.perf_counter() - t0) / args.runs
            name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
            print(json.dumps({"config": args.cfg, "overrides": args.overrides, "device": name, "size": size,
                              "batch": args.batch, "precision": args.precision, "channels_last": args.channels_last,
                              "ms_per_call": round(seconds * 1000, 2),
                              "images_per_sec": round(args.batch / seconds, 2)}), flush=True)


if __name__ == "__main__":
    main()
