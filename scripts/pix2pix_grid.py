"""Train a short grid of pix2pix configs on shapes and print one comparison table.

    .venv/bin/python scripts/pix2pix_grid.py                       # the 12 loss x discriminator configs
    .venv/bin/python scripts/pix2pix_grid.py cfg/pix2pix/experiments/hinge_*.yml --steps 600
    .venv/bin/python scripts/pix2pix_grid.py --steps 300 --set TRAIN.PRECISION=bf16

Each config trains for --steps optimiser steps (a fresh run folder: --restart), then its last
checkpoint is evaluated with `ganstack eval` (FCN-score against the input label maps, domain
FID of the shapes segmenter, L1 to the targets). The table (Markdown) goes to stdout and to
output/pix2pix_grid.md; the real photos' FCN-score is its last row. The DLIM study's
comparison of losses and discriminators, at a size that runs on a laptop.
"""
from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

from ganstack.data.synthetic.embedded import ensure_data
from ganstack.config import load_config
from ganstack.engine.evaluate import evaluate_checkpoint
from ganstack.engine.trainer import train
from ganstack.errors import GanstackError
from ganstack.io import write_text_atomic


def run_one(path: str, steps: int, overrides: list[str], device: str) -> tuple[dict, float]:
    cfg = load_config(path, [f"TRAIN.MAX_STEPS={steps}", *overrides])
    ensure_data(cfg)
    start = time.perf_counter()
    train(cfg, device=device, restart=True)
    seconds = time.perf_counter() - start
    report, _ = evaluate_checkpoint(cfg, ckpt=None, split=cfg.EVAL.SPLIT, seed=0, device=device)
    return {"cfg": cfg, "report": report}, seconds


def table(rows: list[tuple[dict, float]], steps: int) -> str:
    head = ("| config | GAN.LOSS | NET_D | FCN pixel acc | FCN class acc | FCN class IoU | domain FID | L1 | "
            "train s |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for run, seconds in rows:
        cfg, r = run["cfg"], run["report"]
        fcn = r.get("fcn_score", {})
        fid = r.get("segmenter", {}).get("fid", float("nan"))
        lines.append(f"| {cfg.RUN_NAME} | {cfg.GAN.LOSS} | {cfg.PIX2PIX.NET_D} | {fcn.get('pixel_accuracy', float('nan')):.3f} | "
                     f"{fcn.get('class_accuracy', float('nan')):.3f} | {fcn.get('class_iou', float('nan')):.3f} | "
                     f"{fid:.1f} | {r['l1']:.3f} | {seconds:.0f} |")
    real = rows[0][0]["report"].get("fcn_score_real") if rows else None
    if real:
        lines.append(f"| real photos | | | {real['pixel_accuracy']:.3f} | {real['class_accuracy']:.3f} | "
                     f"{real['class_iou']:.3f} | 0 | 0 | |")
    return f"pix2pix grid on shapes, {steps} steps each (test split)\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="*", help="configs to compare (default: cfg/pix2pix/experiments/*.yml)")
    ap.add_argument("--steps", type=int, default=300, help="optimiser steps per config (default 300)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override for every config, e.g. --set TRAIN.PRECISION=bf16 (repeatable)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--out", default="output/pix2pix_grid.md", help="where the table is written")
    args = ap.parse_args(argv)
    configs = args.configs or sorted(glob.glob("cfg/pix2pix/experiments/*.yml"))
    try:
        if not configs:
            raise GanstackError("no configs given and none under cfg/pix2pix/experiments/")
        rows = []
        for path in configs:
            print(f"== {path}", file=sys.stderr, flush=True)
            rows.append(run_one(path, args.steps, args.overrides, args.device))
    except GanstackError as e:
        print(f"pix2pix_grid: error: {e}", file=sys.stderr)
        return 2
    text = table(rows, args.steps)
    write_text_atomic(Path(args.out), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
