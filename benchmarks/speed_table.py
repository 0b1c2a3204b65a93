"""Training images/sec of every family's paper config on this device, as one table.

    .venv/bin/python benchmarks/speed_table.py                       # fp32 and bf16, every case
    .venv/bin/python benchmarks/speed_table.py --cases attngan,srgan --precisions bf16 --json speeds.jsonl

Each case is one `benchmarks/train_speed.py CFG --fake-data` process (random data and weights in
the dataset's own layout, the run built as `ganstack train` builds it), so a case that fails or
runs out of memory costs only its row. Prints a Markdown table (compute-only and end-to-end
images/sec, peak GPU memory on CUDA) and, with --json, writes one JSON object per run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name: (config, what it is)
CASES = {
    "damsm": ("cfg/damsm/bird.yml", "DAMSM birds: Inception-v3 image + BiLSTM text encoders, 299 px, batch 48"),
    "attngan": ("cfg/attngan/bird.yml", "AttnGAN birds: 3 stages to 256 px, batch 20"),
    "opgan": ("cfg/opgan/coco.yml", "OP-GAN COCO: 3 stages to 256 px, 3 objects, batch 24"),
    "opgan_sn": ("cfg/opgan/coco_sn.yml", "OP-GAN COCO, spectral-norm discriminators"),
    "stackgan2": ("cfg/stackgan2/birds.yml", "StackGAN++ birds: 3 scales to 256 px, batch 24"),
    "stackgan2_bedroom": ("cfg/stackgan2/bedroom.yml", "StackGAN++ bedroom, unconditional, 256 px"),
    "pix2pix": ("cfg/pix2pix/facades.yml", "pix2pix facades: unet_256 + PatchGAN, batch 1"),
    "srresnet": ("cfg/srresnet/div2k.yml", "SRResNet x4: 16 blocks, 96 px crops, batch 16"),
    "srgan": ("cfg/srgan/div2k.yml", "SRGAN x4: + VGG-style D and VGG19 loss, batch 16"),
    "srcnn": ("cfg/srcnn/div2k.yml", "SRCNN 9-1-5"),
}


def run_case(cfg: str, precision: str, args) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks/train_speed.py"), str(ROOT / cfg), "--fake-data",
           "--device", args.device, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--set", f"TRAIN.PRECISION={precision}", *[x for s in args.overrides for x in ("--set", s)]]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"config": cfg, "precision": precision, "error": f"over {args.timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"config": cfg, "precision": precision, "error": tail[:200]}
    report = json.loads(lines[-1])
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32, bf16, fp16")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run before its row is an error")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE for every run")
    ap.add_argument("--json", help="append one JSON object per run to this file")
    args = ap.parse_args()
    names = [n for n in args.cases.split(",") if n]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        sys.exit(f"--cases: unknown {', '.join(unknown)}; choose from {', '.join(CASES)}")
    print("| case | precision | batch | images/s (compute) | images/s (end to end) | peak GPU GiB |")
    print("|---|---|---|---|---|---|")
    for name in names:
        cfg, _ = CASES[name]
        for precision in args.precisions.split(","):
            report = {"case": name, **run_case(cfg, precision, args)}
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(report) + "\n")
            if "error" in report:
                print(f"| {name} | {precision} | | error: {report['error']} | | |", flush=True)
            else:
                print(f"| {name} | {precision} | {report['batch_size']} | {report['images_per_sec_compute']} | "
                      f"{report['images_per_sec_end_to_end']} | {report.get('peak_gpu_memory_gib', '')} |", flush=True)


if __name__ == "__main__":
    main()
