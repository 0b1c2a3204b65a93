"""Command line: `ganstack {prepare,train,eval} --help`.

Every user error (config, data, checkpoint, arguments) is one line on stderr
and exit status 2; a stop by SIGINT/SIGTERM exits 130/143 after writing its
checkpoint.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from .errors import GanstackError

SHAPES_DEFAULTS = {"num_train": 2400, "num_test": 600, "size": 64, "seed": 0}


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("cfg", help="YAML config, e.g. cfg/damsm/shapes.yml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set TRAIN.BATCH_SIZE=16 (repeatable)")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda (default: auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganstack", description="Conditional GANs on one trainer.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("prepare", help="generate an embedded dataset in its real on-disk format")
    p.add_argument("dataset", choices=["shapes"], help="which embedded dataset")
    p.add_argument("--out", default="data/shapes", help="output folder (default: data/shapes)")
    p.add_argument("--num-train", type=int, default=SHAPES_DEFAULTS["num_train"],
                   help=f"training images (default {SHAPES_DEFAULTS['num_train']})")
    p.add_argument("--num-test", type=int, default=SHAPES_DEFAULTS["num_test"],
                   help=f"test images (default {SHAPES_DEFAULTS['num_test']})")
    p.add_argument("--size", type=int, default=SHAPES_DEFAULTS["size"],
                   help=f"image side in pixels (default {SHAPES_DEFAULTS['size']}); e.g. --num-train 50000 --size 128")
    p.add_argument("--seed", type=int, default=SHAPES_DEFAULTS["seed"], help="random seed (default 0)")

    p = sub.add_parser("train", help="train the variant a config names (auto-resumes its run folder)")
    _add_config_args(p)
    p.add_argument("--resume", metavar="CKPT", help="continue from this checkpoint file "
                   "(default: the latest in output/<RUN_NAME>/checkpoints, if any)")
    p.add_argument("--restart", action="store_true",
                   help="start afresh; an existing run folder is renamed aside, never deleted")

    p = sub.add_parser("eval", help="evaluate a checkpoint; writes a JSON report")
    _add_config_args(p)
    p.add_argument("--ckpt", help="checkpoint file (default: the latest of the run)")
    p.add_argument("--split", default=None, help="dataset split (default: EVAL.SPLIT)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draws (default 0)")
    p.add_argument("--out", help="report path (default: output/<RUN_NAME>/eval/<checkpoint>.json)")
    return parser


# ------------------------------------------------------------------ commands
def cmd_prepare(args) -> int:
    from .data.synthetic.shapes import prepare_shapes
    out = prepare_shapes(args.out, num_train=args.num_train, num_test=args.num_test, size=args.size,
                         seed=args.seed)
    print(f"shapes: {args.num_train} train + {args.num_test} test images at {args.size} px in {out}")
    return 0


def ensure_data(cfg) -> None:
    """Generate the embedded shapes set when the config points at a missing one."""
    data_dir = Path(cfg.DATA_DIR)
    if cfg.DATASET_NAME != "shapes" or (data_dir / "meta.json").is_file():
        return
    if int(os.environ.get("RANK", "0")) == 0:
        from .data.synthetic.shapes import prepare_shapes
        print(f"preparing shapes in {data_dir} (first run only)", flush=True)
        prepare_shapes(data_dir, **SHAPES_DEFAULTS)
    else:  # other torchrun ranks wait for rank 0's generator
        deadline = time.time() + 1800
        while not (data_dir / "meta.json").is_file():
            if time.time() > deadline:
                raise GanstackError(f"{data_dir}: rank 0 did not finish preparing shapes in 30 min")
            time.sleep(1)


def cmd_train(args) -> int:
    from .config import load_config
    from .engine.trainer import Interrupted, train
    cfg = load_config(args.cfg, args.overrides)
    ensure_data(cfg)
    try:
        run_dir = train(cfg, device=args.device, resume=args.resume, restart=args.restart)
    except Interrupted as stop:
        return stop.exit_code
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: {run_dir}  (tensorboard --logdir {run_dir})")
    return 0


def cmd_eval(args) -> int:
    from .engine.evaluate import evaluate_checkpoint
    from .config import load_config
    cfg = load_config(args.cfg, args.overrides)
    report, path = evaluate_checkpoint(cfg, ckpt=args.ckpt, split=args.split or cfg.EVAL.SPLIT,
                                       seed=args.seed, device=args.device, out=args.out)
    print(json.dumps(report, indent=2))
    print(f"report: {path}", file=sys.stderr)
    return 0


COMMANDS = {"prepare": cmd_prepare, "train": cmd_train, "eval": cmd_eval}


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = _one_line_warnings
    try:
        return COMMANDS[args.command](args)
    except GanstackError as e:
        print(f"ganstack {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before training started: nothing to save
        print(f"ganstack {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
